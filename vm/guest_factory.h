// Guests by kind: "threads" (vm/thread_guest.h, anywhere) and "kvm" (vm/kvm/kvm_guest.h, where
// it is built and /dev/kvm opens). The destination tells them apart by the incoming layout:
// a KVM guest's RAM is one block named "kvm-ram", a thread guest's is "ram".
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/guest.h"

namespace tern {

// Kinds compiled into this binary ("threads", "kvm").
std::vector<std::string> guest_kinds();

// Source guest from "KIND,SPEC" ("kvm,vcpus=2,ram=256M,wss=25%"); SPEC is vm/workload.h's.
// `prefill` (thread guests): every working-set page holds data (version 1) before the guest
// starts, so a migration moves data and not zero pages, whatever the guest's rate.
Result<std::unique_ptr<Guest>> make_source_guest(const std::string& text, bool prefill = false);

// Destination factory: a KVM guest for a KVM guest's layout, else a thread guest.
GuestFactory make_guest_factory();

}  // namespace tern
