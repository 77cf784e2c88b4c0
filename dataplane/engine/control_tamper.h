// Test-only tampering with received control frames, as an attacker on the path would, so that
// tests on every transport (in-process engines and ternd processes alike) can check that a
// sealed control link refuses what was changed on the way. Armed by a test with
// arm_control_tamper, or for a whole process by TERN_TEST_CONTROL_TAMPER="ACTION:N[:SIDE]"
// (ACTION flip|replay|drop, N counts received frames from 1, SIDE source|destination|any;
// read once). It applies to the first sealed control link of that side only (so a re-armed
// destination's next migration is untouched), never to links without session keys.
//
// Threads: arm from any thread; take_control_tamper from a control thread.
#pragma once

#include <cstdint>
#include <string>

#include "dataplane/status.h"

namespace tern::engine {

enum class LinkSide { kSource, kDestination };

struct ControlTamper {
  enum class Action { kNone, kFlip, kReplay, kDrop };
  Action action = Action::kNone;
  uint64_t frame = 0;  // the received frame it applies to, from 1
  // kFlip: one byte of its payload inverted. kReplay: delivered again right after itself.
  // kDrop: never delivered.
};

// "flip:2", "replay:1:source": kInvalidArgument naming the bad part.
Result<ControlTamper> parse_control_tamper(const std::string& text, bool* any_side,
                                           LinkSide* side);
// Arms one tamper for the next sealed control link of `side`.
void arm_control_tamper(const ControlTamper& tamper, LinkSide side);
// The tamper armed for a new sealed link of `side` (taken: later links get none), or none.
ControlTamper take_control_tamper(LinkSide side);

}  // namespace tern::engine
