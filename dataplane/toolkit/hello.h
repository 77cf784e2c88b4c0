// Transport toolkit: the hello exchange every transport runs when it connects channels (part of
// the supported interface for writing a transport; docs/architecture.md, "Adding a transport").
// The source announces each channel with a kHello frame as its first frame; the destination
// reads one hello per incoming channel and assembles the channels of one session, ordered by
// index (HelloAssembler; across connections and accept() calls, session_gatherer.h).
// hello_transport.h builds connect() on it for every transport.
//
// Threads: control path only (the transport's connect()/accept() caller). Allocates; never on
// the data tier.
#pragma once

#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/transport.h"
#include "dataplane/toolkit/raw_channel.h"

namespace tern::toolkit {

using Clock = std::chrono::steady_clock;

// Largest channel count a hello may announce (bounds what a hostile peer makes us allocate).
inline constexpr uint32_t kMaxChannels = 1024;

// "<what>: nothing within 250 ms"
Status timeout_status(const std::string& what, std::chrono::milliseconds timeout);

// Milliseconds left until `deadline` (0 when past), for poll().
int remaining_ms(Clock::time_point deadline);

// One idle wait of a handshake loop over several channels: poll()s `fds` (the channels that
// wake on receive) for at most 100 ms and until `deadline`, or 1 ms when `nap_short` (some
// channel cannot wake a poll, or has bytes to send).
void wait_for_channels(std::vector<pollfd>& fds, bool nap_short, Clock::time_point deadline);

// Source: sends `hello` as the first frame of `ch` and waits (until `deadline`) until it has
// been handed to the peer. Sets the channel's index and hides the hello from poll_tx.
Status send_hello(RawChannel& ch, const HelloPayload& hello, Clock::time_point deadline);

// Destination: waits (until `deadline`) for the first frame of `ch`, which must be a hello.
Result<HelloPayload> receive_hello(RawChannel& ch, Clock::time_point deadline);

// Collects the channels of one session as their hellos arrive, in any order.
class HelloAssembler {
 public:
  // Checks `hello` against the ones seen so far (same session and count, index in range and
  // not seen before) and keeps the channel. An error names the offending field.
  Status add(std::unique_ptr<RawChannel> ch, const HelloPayload& hello);
  bool complete() const { return count_ != 0 && have_ == count_; }
  bool empty() const { return have_ == 0; }
  // Channels still missing ("2 of 4 channels"), for timeout messages.
  std::string progress() const;
  // The channels ordered by index; only when complete().
  ChannelSet take();

 private:
  uint64_t session_ = 0;
  uint32_t count_ = 0;
  uint32_t have_ = 0;
  std::vector<std::unique_ptr<RawChannel>> slots_;
};

// kInvalidArgument unless 3 <= count <= kMaxChannels (control, urgent, at least one bulk).
Status check_channel_count(uint32_t count);

// The hellos connect() sends: indexes 0..count-1, all with `count` and `session_id`.
std::vector<HelloPayload> standard_hellos(uint32_t count, uint64_t session_id);

}  // namespace tern::toolkit
