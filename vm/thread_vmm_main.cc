// tern-thread-vmm: the thread guest (vm/thread_guest.h) as a VMM process of its own, which hands
// its guest to ternd through libtern-vmm only (attach/tern-vmm.h, the C API any VMM uses;
// the serving is vm/vmm_serve.h, shared with tern-kvm-vmm).
//
//   source:      tern-thread-vmm --attach SOCK --spec vcpus=2,ram=256M,page=4K [--prefill]
//   destination: tern-thread-vmm --attach SOCK --incoming --spec ram=256M,page=4K
//
// Its RAM is one shared file (RamBlock::create_shared: hugetlb for 2M pages; for 4K pages a
// memfd, or a file on a private huge tmpfs where memfds have 4 KiB pages); the destination creates a userfaultfd and hands
// it over for postcopy. It serves ternd until ternd detaches or goes away; with --reattach it
// then attaches again (a new ternd on the same socket) while its guest keeps running. Prints one
// line per event on stdout ("attached", "detached: ...").
#include <CLI/CLI.hpp>
#include <iostream>
#include <memory>

#include "vm/thread_guest.h"
#include "vm/vmm_serve.h"
#include "vm/workload.h"

namespace tern {
namespace {

int run(const VmmOptions& o, bool prefill) {
  auto spec = parse_workload(o.spec);
  if (!spec) {
    std::cerr << "tern-thread-vmm: --spec: " << spec.status().message() << "\n";
    return 2;
  }
  // The RAM is handed to ternd as a memfd, whatever the spec says.
  spec->backing = RamBacking::kMemfd;
  Result<std::unique_ptr<ThreadGuest>> guest =
      o.incoming ? ThreadGuest::create_incoming(
                       Layout{{BlockInfo{"ram", spec->ram_bytes, spec->page_size}}},
                       RamBacking::kMemfd)
                 : ThreadGuest::create(*spec);
  if (!guest) {
    std::cerr << "tern-thread-vmm: " << guest.status().message() << "\n";
    return 1;
  }
  ThreadGuest& g = **guest;
  if (!o.incoming) {
    if (prefill)
      if (Status s = g.prefill(); !s) return std::cerr << s.message() << "\n", 1;
    if (Status s = g.start(); !s) return std::cerr << s.message() << "\n", 1;
  }
  return serve_vmm("tern-thread-vmm", g, g, g.vcpus(), o);
}

}  // namespace
}  // namespace tern

int main(int argc, char** argv) {
  tern::VmmOptions o;
  bool prefill = false;
  CLI::App app{"tern-thread-vmm: a thread guest in a VMM process of its own, attached to ternd"};
  tern::add_vmm_options(app, o);
  app.add_flag("--prefill", prefill, "source: write every working-set page before starting");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  return tern::run(o, prefill);
}
