// A RawChannel for fuzz targets that receives its frames from the fuzz input: each poll_rx
// hands out the next 32-byte FrameHeader and its payload (validated by accept_header, as every
// transport does), up to `max_frames`; then, or when the input runs short, the peer is gone.
// Posted frames are taken and dropped.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

#include "dataplane/toolkit/raw_channel.h"

namespace tern::fuzzing {

class InputChannel : public toolkit::RawChannel {
 public:
  InputChannel(const uint8_t*& p, size_t& left, size_t max_frames)
      : p_(p), left_(left), frames_left_(max_frames) {}
  size_t post(const TxFrame*, size_t n) override { return n; }
  bool flush() override { return !failed(); }
  size_t poll_tx() override { return 0; }
  size_t tx_pending() const override { return 0; }
  int wait_fd() const override { return -1; }
  size_t poll_rx(RxFrame* out, size_t max) override {
    if (max == 0 || failed()) return 0;
    if (frames_left_ == 0 || left_ < sizeof(FrameHeader)) {
      fail_peer_closed();
      return 0;
    }
    --frames_left_;
    FrameHeader h;
    std::memcpy(&h, p_, sizeof h);
    p_ += sizeof h;
    left_ -= sizeof h;
    if (!accept_header(h)) return 0;
    const uint32_t n = toolkit::payload_length(h);
    if (n > left_) {
      fail_peer_closed();
      return 0;
    }
    payload_.assign(p_, p_ + n);
    p_ += n;
    left_ -= n;
    out->hdr = h;
    out->data = n ? payload_.data() : nullptr;
    return 1;
  }

 private:
  const uint8_t*& p_;
  size_t& left_;
  size_t frames_left_;
  std::vector<uint8_t> payload_;
};

}  // namespace tern::fuzzing
