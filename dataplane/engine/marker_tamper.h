// Test-only tampering with received sealed markers on the data channels (marker_seal.h), as
// an attacker on the path would, so that tests on every transport can check that a round end,
// a page request or a page tag changed or replayed on the way is refused. Armed by a test with
// arm_marker_tamper, or for a whole process by TERN_TEST_MARKER_TAMPER="ACTION:KIND" (ACTION
// flip|replay, KIND round-end|request|page|urgent-page; read once). The first keyed receiver of that kind
// takes it (so a re-armed destination's next migration is untouched); unkeyed channels never do.
// flip:page changes the first page frame on a bulk channel and every later copy of that page
// (so it never verifies); flip:urgent-page the first page answered on the urgent channel.
//
// Threads: arm from any thread; take_marker_tamper from the thread that builds a receiver.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>

#include "dataplane/engine/marker_seal.h"
#include "dataplane/status.h"

namespace tern::engine {

// kPage: a page frame on a bulk channel; kUrgentPage: on the urgent channel (postcopy only).
enum class MarkerKind { kRoundEnd, kRequest, kPage, kUrgentPage };
enum class MarkerTamper { kNone, kFlip, kReplay };

// "flip:round-end", "replay:request": kInvalidArgument naming the bad part.
Result<MarkerTamper> parse_marker_tamper(const std::string& text, MarkerKind* kind);
void arm_marker_tamper(MarkerKind kind, MarkerTamper tamper);
// The tamper armed for `kind` (taken: later receivers get none), or kNone.
MarkerTamper take_marker_tamper(MarkerKind kind);

// A receiver's use of a taken tamper on the first sealed marker it opens: flip inverts a byte
// of it before it is opened; replay keeps a copy that the receiver opens again right after.
// Data tier: no allocation.
class MarkerTamperSite {
 public:
  void arm(MarkerTamper t) { tamper_ = t; }
  // Called with each received sealed marker's payload before it is opened.
  void before_open(uint8_t* payload) {
    if (tamper_ == MarkerTamper::kFlip) {
      payload[kSealedMarkerBytes / 2] ^= 0xff;
      tamper_ = MarkerTamper::kNone;
    } else if (tamper_ == MarkerTamper::kReplay) {
      std::memcpy(replay_, payload, sizeof(replay_));
      replay_due_ = true;
      tamper_ = MarkerTamper::kNone;
    }
  }
  // The copy to deliver again after the marker it copied, once; nullptr otherwise.
  uint8_t* take_replay() {
    if (!replay_due_) return nullptr;
    replay_due_ = false;
    return replay_;
  }

 private:
  MarkerTamper tamper_ = MarkerTamper::kNone;
  bool replay_due_ = false;
  uint8_t replay_[kSealedMarkerBytes];
};

}  // namespace tern::engine
