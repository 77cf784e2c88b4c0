// Transport toolkit: RawChannel, the base every transport's Channel derives from (loopback,
// tcp, rdma, dpdk), and the small helpers a channel's post()/poll_rx() share. It is part of the
// supported interface for writing a transport (docs/architecture.md, "Adding a transport"):
//   - RawChannel keeps the channel index and the sticky error, validates received headers
//     (accept_header), hides the transport's own hello from poll_tx (hide_tx_completions), and
//     lets the hello exchange in hello.h drive any channel;
//   - payload_length / store_frame: how many payload bytes follow a header, and how a send slot
//     borrows (kPage) or copies (other types) a posted frame's payload;
//   - land_page / ends_staged_batch: thin forwards to the channel's Landing (landing.h), the
//     engine's one placement authority: where a received page goes (with the refusal that fails
//     the channel) and when poll_rx must return; payload bytes are written with
//     Landing::copy / copy_fragment.
//
// Threads: like Channel, one owner thread at a time. set_index() and hide_tx_completions() are
// called by the transport's connect()/accept() before the channel is handed out.
#pragma once

#include <cstring>
#include <cstdint>
#include <limits>
#include <string>

#include "dataplane/transport.h"

namespace tern::toolkit {

inline constexpr uint32_t kUnknownIndex = std::numeric_limits<uint32_t>::max();

// Payload bytes that follow a header on the wire. kZero and kRequest use `length` for the
// bytes they cover and carry no payload; unknown types carry none (check_header rejects them).
inline uint32_t payload_length(const FrameHeader& h) {
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kPage:
    case FrameType::kHello:
    case FrameType::kControl:
      return h.length;
    default:
      return 0;
  }
}

// Fills a send slot (any type with hdr, payload and owned members) from a posted frame: page
// payloads are borrowed until the transport is done with them, others are copied (control
// tier: the slot's buffer may grow once, then is reused).
template <typename Slot>
void store_frame(Slot& slot, const TxFrame& f, uint32_t len) {
  slot.hdr = f.hdr;
  const auto* p = static_cast<const uint8_t*>(f.payload);
  if (len == 0) {
    slot.payload = nullptr;
  } else if (static_cast<FrameType>(f.hdr.type) == FrameType::kPage) {
    slot.payload = p;
  } else {
    slot.owned.assign(p, p + len);
    slot.payload = slot.owned.data();
  }
}

class RawChannel : public Channel {
 public:
  uint32_t index() const override { return index_; }
  const Status& error() const override { return error_; }

  // Before the hello: the index is unknown and frames of any channel field are accepted.
  void set_index(uint32_t index) { index_ = index; }
  // The next `n` completions poll_tx would report belong to frames the transport sent itself
  // (the hello); poll_tx swallows them so the engine only sees its own frames.
  void hide_tx_completions(size_t n) { hidden_tx_ += n; }
  // Non-page payloads above the limit fail the channel: kMaxHandshakePayload until the hello
  // exchange (and authentication) is over, then kMaxControlPayload. Called by the toolkit
  // before the channel is handed out.
  void open_control_limit() { control_limit_ = kMaxControlPayload; }
  // The session keys of the handshake this channel passed (toolkit/session_keys.h).
  void set_keys(const ChannelKeys& keys) {
    keys_ = keys;
    has_keys_ = true;
  }

 protected:
  // First failure wins (errors are sticky). Cold path: may allocate.
  void fail(Status s) {
    if (error_.is_ok()) error_ = std::move(s);
  }
  void fail_peer_closed() {
    fail(Status(Code::kIo, "peer closed channel " + std::to_string(index_)));
  }
  bool failed() const { return !error_.is_ok(); }

  // Receive-side checks shared by every transport: check_header, then the channel field. On
  // failure the channel fails and false is returned. No allocation unless it fails.
  bool accept_header(const FrameHeader& h) {
    Status s = check_header(h);
    if (!s.is_ok()) {
      fail(Status(s.code(), "channel " + std::to_string(index_) + ": " + s.message()));
      return false;
    }
    if (static_cast<FrameType>(h.type) != FrameType::kPage && payload_length(h) > control_limit_) {
      fail(Status(Code::kProtocol, "channel " + std::to_string(index_) + ": a frame of " +
                                       std::to_string(h.length) + " bytes before the channel "
                                       "was authenticated (at most " +
                                       std::to_string(control_limit_) + ")"));
      return false;
    }
    if (index_ != kUnknownIndex && h.channel != index_) {
      fail(Status(Code::kProtocol, "frame says channel " + std::to_string(h.channel) +
                                       " but arrived on channel " + std::to_string(index_)));
      return false;
    }
    return true;
  }
  // The landing's rules (dataplane/landing.h), asked here so that a failure names the channel.
  // Where a kPage payload goes; nullptr (and the channel failed) when the landing refuses it.
  uint8_t* land_page(const FrameHeader& h) {
    if (landing_ == nullptr) {
      fail(Status(Code::kProtocol,
                  "channel " + std::to_string(index_) + ": page frame but no landing is set"));
      return nullptr;
    }
    LandingRefusal why = LandingRefusal::kNone;
    uint8_t* dst = landing_->resolve(h, &why);
    if (dst == nullptr) {
      Status s = landing_->refusal(h, why);
      fail(Status(s.code(), "channel " + std::to_string(index_) + ": " + s.message()));
    }
    return dst;
  }
  // Applies the hidden-completion budget to `n` raw completions.
  size_t visible_tx(size_t n) {
    size_t hide = n < hidden_tx_ ? n : hidden_tx_;
    hidden_tx_ -= hide;
    return n - hide;
  }
  // Landing::ends_batch: poll_rx returns after this frame (a staged host page is complete).
  bool ends_staged_batch(const FrameHeader& h) const {
    return landing_ != nullptr && landing_->ends_batch(h);
  }

  uint32_t index_ = kUnknownIndex;
  size_t hidden_tx_ = 0;
  uint32_t control_limit_ = kMaxHandshakePayload;
  Status error_;
};

}  // namespace tern::toolkit
