#include "vm/self_check.h"

namespace tern {

SelfCheck* self_check(Guest& guest) { return dynamic_cast<SelfCheck*>(&guest); }
const SelfCheck* self_check(const Guest& guest) { return dynamic_cast<const SelfCheck*>(&guest); }

Result<VerifyReport> check_guest(Guest& guest) {
  SelfCheck* check = self_check(guest);
  if (check == nullptr)
    return Status(Code::kUnavailable,
                  "the guest (" + guest.describe() + ") cannot check its own pages");
  const bool was_running = guest.running();
  if (was_running) guest.pause();
  VerifyReport v = check->verify();
  const VerifyReport touched = check->verify_counters();
  v.touched_checked = touched.touched_checked;
  v.touched_mismatches = touched.touched_mismatches;
  v.first_touch_latency = touched.first_touch_latency;
  if (v.first_mismatch.empty()) v.first_mismatch = touched.first_mismatch;
  if (was_running)
    if (Status s = guest.start(); !s) return s;
  return v;
}

}  // namespace tern
