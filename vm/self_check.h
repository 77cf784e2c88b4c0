// A guest that can check its own memory: every page against the guest's own record of what it
// wrote (the version tables of the thread guest and the KVM guest). A guest concern, not the
// engine's: the engine moves pages; ternd, the tests and the benchmarks ask the guest whether
// they arrived intact.
//
// Threads: verify() and check_guest() from the thread that runs the guest's control (start,
// pause); verify_counters() from any thread.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/guest.h"
#include "dataplane/histogram.h"
#include "dataplane/status.h"

namespace tern {

struct VerifyReport {
  uint64_t pages_checked = 0;     // target pages whose content was checked
  uint64_t mismatches = 0;        // pages whose content is wrong (torn, stale, misplaced)
  uint64_t touched_checked = 0;   // postcopy: pages verified by the guest on first touch
  uint64_t touched_mismatches = 0;
  std::string first_mismatch;     // human-readable description of the first bad page, if any
  // Postcopy: how long each first touch waited for its page (the guest side of fault latency;
  // pages already present count too, in the lowest buckets). Empty where nothing is checked.
  LatencyHistogram::Snapshot first_touch_latency;
};

class SelfCheck {
 public:
  // Checks every page of guest memory against the guest's own record (guest paused or done).
  virtual VerifyReport verify() = 0;
  // Counters of the guest's own first-touch checks so far (postcopy on the destination).
  virtual VerifyReport verify_counters() const = 0;

 protected:
  ~SelfCheck() = default;  // not owned through this interface
};

// The self check of `guest`, or nullptr for a guest that keeps no record of its pages.
SelfCheck* self_check(Guest& guest);
const SelfCheck* self_check(const Guest& guest);

// Checks every page of `guest` now: pauses it if it runs, runs verify() with the latest
// first-touch counters (and their latency), and resumes it. Fails for a guest without a self
// check, or one that does not resume.
[[nodiscard]] Result<VerifyReport> check_guest(Guest& guest);

}  // namespace tern
