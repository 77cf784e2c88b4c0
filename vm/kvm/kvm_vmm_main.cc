// tern-kvm-vmm: the KVM mini-VMM (vm/kvm/kvm_guest.h) as a VMM process of its own, which hands
// its guest to ternd through libtern-vmm only (attach/tern-vmm.h; the serving is vm/vmm_serve.h,
// shared with tern-thread-vmm).
//
//   source:      tern-kvm-vmm --attach SOCK --spec vcpus=2,ram=256M,page=4K,wss=25%
//   destination: tern-kvm-vmm --attach SOCK --incoming --spec ram=256M,page=4K
//
// Guest RAM is one memslot on a memfd (hugetlb for 2M pages), handed over as its fd. At each
// dirty sync the VMM harvests KVM's dirty ring (or dirty log) into the shared bitmap; throttling
// (S4) works on the ring's ring-full exits, free-page reports (S5) come from the guest program's
// report ring. The destination creates the userfaultfd for postcopy on its own mapping, and
// the vCPU state travels as the opaque state blob. The guest checks its own pages (VERIFY).
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "vm/kvm/kvm_guest.h"
#include "vm/vmm_serve.h"
#include "vm/workload.h"

namespace tern {
namespace {

int run(const VmmOptions& o) {
  auto spec = parse_workload(o.spec);
  if (!spec) {
    std::cerr << "tern-kvm-vmm: --spec: " << spec.status().message() << "\n";
    return 2;
  }
  KvmGuest::Options opt;
  opt.backing = RamBacking::kMemfd;  // handed to ternd as a memfd, whatever the spec says
  Result<std::unique_ptr<KvmGuest>> guest =
      o.incoming ? KvmGuest::create_incoming(
                       Layout{{BlockInfo{kKvmBlockName, spec->ram_bytes, spec->page_size}}},
                       RamBacking::kMemfd)
                 : KvmGuest::create(*spec, opt);
  if (!guest) {
    std::cerr << "tern-kvm-vmm: " << guest.status().message() << "\n";
    return 1;
  }
  KvmGuest& g = **guest;
  if (!o.incoming)
    if (Status s = g.start(); !s) return std::cerr << "tern-kvm-vmm: " << s.message() << "\n", 1;
  return serve_vmm("tern-kvm-vmm", g, g, g.vcpus(), o);
}

}  // namespace
}  // namespace tern

int main(int argc, char** argv) {
  tern::VmmOptions o;
  CLI::App app{"tern-kvm-vmm: a KVM guest in a VMM process of its own, attached to ternd"};
  tern::add_vmm_options(app, o);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tern::run(o);
}
