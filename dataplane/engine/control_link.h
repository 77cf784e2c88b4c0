// Control messages on channel 0, for the session control threads (source and destination).
// Blocking with deadlines: this is the control path, not the data path. On a channel with
// session keys every message is sealed and opened (frame_seal.h): a frame that does not open
// fails the link with "control frame failed authentication: ...".
//
// Threads: the owning control thread only.
#pragma once

#include <chrono>
#include <memory>
#include <cstdint>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/engine/control_tamper.h"
#include "dataplane/engine/frame_seal.h"
#include "dataplane/transport.h"

namespace tern::engine {

// How often each side says it is alive in postcopy: fixed, so that a peer's timeout (its own
// parameter, at least 500 ms) never depends on this side's.
inline constexpr std::chrono::milliseconds kKeepaliveInterval{100};

struct ControlMessage {
  ControlType type;
  uint32_t round = 0;
  std::vector<uint8_t> payload;
  std::string text() const { return std::string(payload.begin(), payload.end()); }
};

class ControlLink {
 public:
  // `side`: which end of the migration this link is (test tampering, control_tamper.h).
  ControlLink(Channel* channel, LinkSide side);

  // Posts one control message and flushes it, waiting up to `timeout` for window space.
  Status send(ControlType type, uint32_t round = 0, const std::vector<uint8_t>& payload = {},
              std::chrono::milliseconds timeout = std::chrono::seconds(30));
  Status send_text(ControlType type, const std::string& text,
                   std::chrono::milliseconds timeout = std::chrono::seconds(30)) {
    return send(type, 0, std::vector<uint8_t>(text.begin(), text.end()), timeout);
  }
  // One received message, if any (non-blocking). A non-control frame fails the link.
  // kKeepalive messages are consumed here (they only say the peer is alive).
  std::optional<ControlMessage> poll();
  // Postcopy liveness: from now on keepalive() sends a kKeepalive every `interval` and fails
  // the link (kTimeout) once nothing has arrived for `timeout`. Off until called.
  void enable_keepalive(std::chrono::milliseconds interval, std::chrono::milliseconds timeout);
  // Sends a keepalive when one is due and checks the peer's silence; the control loop calls
  // it at least every `interval`. The link's error (sticky) when the peer went silent.
  Status keepalive();
  // Blocks until the channel may have input or `timeout` passes.
  void wait(std::chrono::milliseconds timeout);
  // Sticky: the channel's error, or a protocol error seen by poll().
  const Status& error() const;
  // Whether messages are sealed (the channel has session keys).
  bool sealed() const { return sealer_ != nullptr; }

 private:
  Channel* channel_;
  std::unique_ptr<FrameSealer> sealer_;  // both set when the channel has keys
  std::unique_ptr<FrameOpener> opener_;
  // Test-only (control_tamper.h): what to do to which received frame; a frame to replay.
  ControlTamper tamper_;
  uint64_t received_ = 0;
  std::optional<std::pair<FrameHeader, std::vector<uint8_t>>> replay_;
  bool replay_due_ = false;
  // The next received frame (a replayed one first); false when none.
  bool next_frame(RxFrame* f);
  Landing no_pages_;  // control channels receive no pages: any kPage frame is refused
  Status error_;
  bool keepalive_on_ = false;
  std::chrono::milliseconds keepalive_interval_{0}, keepalive_timeout_{0};
  std::chrono::steady_clock::time_point last_rx_{}, last_tx_{};
};

}  // namespace tern::engine
