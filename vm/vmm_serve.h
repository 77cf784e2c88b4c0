// A tern guest (the thread guest, the KVM guest) served to ternd from a VMM process of its own,
// through libtern-vmm only (attach/tern-vmm.h, the C API any VMM uses): the body shared by
// tern-thread-vmm (vm/thread_vmm_main.cc) and tern-kvm-vmm (vm/kvm/kvm_vmm_main.cc).
//
// The guest's RAM blocks must be file-backed (RamBacking::kMemfd: memfd, hugetlb for 2M) so
// that they can be handed over as fds. A destination creates a userfaultfd and hands it over
// for postcopy. Capabilities follow what the guest offers: throttling where it has a dirty
// ring (dirty_limit_vcpus() > 0), free-page reports where it reports free pages.
//
// Threads: everything runs on the calling thread; the guest's own threads keep running.
#pragma once

#include <CLI/CLI.hpp>
#include <cstdint>
#include <string>

#include "dataplane/guest.h"
#include "vm/self_check.h"

namespace tern {

// The command line both VMM programs share.
struct VmmOptions {
  std::string socket;    // --attach: ternd's attach socket
  std::string spec = "vcpus=2,ram=64M";  // --spec: vm/workload.h
  bool incoming = false;  // --incoming: a destination VMM
  bool reattach = false;  // --reattach: attach again after ternd goes away (source)
  bool minor_faults = true;  // --no-minor-faults: a destination's userfaultfd without them
  bool postcopy = true;      // --no-postcopy: a destination that hands over no userfaultfd
};
// Adds --attach, --spec, --incoming, --reattach, --[no-]minor-faults and --no-postcopy.
void add_vmm_options(CLI::App& app, VmmOptions& o);

// Attaches `guest` to ternd as `program` ("tern-kvm-vmm") and serves ternd's requests until
// ternd detaches or goes away; with o.reattach, attaches again while the guest runs. Prints one
// line per event on stdout ("attached", "detached: ...; guest running"). A destination whose
// guest migrated here keeps it running until SIGTERM. Returns the process's exit code.
int serve_vmm(const std::string& program, Guest& guest, SelfCheck& check, uint32_t vcpus,
              const VmmOptions& o);

}  // namespace tern
