#include "vm/guest_factory.h"

#include "vm/thread_guest.h"
#include "vm/workload.h"
#ifdef TERN_HAVE_KVM
#include "vm/kvm/kvm_guest.h"
#endif

namespace tern {

std::vector<std::string> guest_kinds() {
#ifdef TERN_HAVE_KVM
  return {"threads", "kvm"};
#else
  return {"threads"};
#endif
}

Result<std::unique_ptr<Guest>> make_source_guest(const std::string& text, bool prefill) {
  const std::string kind = text.substr(0, text.find(','));
  const std::string spec = text.size() > kind.size() ? text.substr(kind.size() + 1) : "";
  if (kind != "threads" && kind != "kvm") {
    std::string avail;
    for (const std::string& k : guest_kinds()) avail += (avail.empty() ? "" : ", ") + k;
    return Status(Code::kInvalidArgument,
                  "unknown guest kind '" + kind + "' in --guest; available: " + avail);
  }
  Result<WorkloadSpec> ws = parse_workload(spec);
  if (!ws) return ws.status();
  if (kind == "kvm") {
    if (prefill)
      return Status(Code::kInvalidArgument, "--prefill is for thread guests only");
#ifdef TERN_HAVE_KVM
    auto g = KvmGuest::create(*ws);
    if (!g) return g.status();
    return std::unique_ptr<Guest>(std::move(g).value());
#else
    return Status(
        Code::kUnavailable,
        "this build has no KVM guest (x86-64 Linux only, -Dkvm); use --guest threads,...");
#endif
  }
  auto g = ThreadGuest::create(*ws);
  if (!g) return g.status();
  if (prefill)
    if (Status s = (*g)->prefill(); !s) return s;
  return std::unique_ptr<Guest>(std::move(g).value());
}

GuestFactory make_guest_factory() {
  return [](const Layout& layout) -> Result<std::unique_ptr<Guest>> {
    if (layout.blocks.size() == 1 && layout.blocks[0].name == "kvm-ram") {
#ifdef TERN_HAVE_KVM
      return make_kvm_guest_factory()(layout);
#else
      return Status(Code::kUnavailable,
                    "the source migrates a KVM guest but this build has no KVM guest");
#endif
    }
    return make_thread_guest_factory()(layout);
  };
}

}  // namespace tern
