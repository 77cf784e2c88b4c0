// libFuzzer target: the hello exchange's receiving side (dataplane/toolkit/hello.h). The input
// is what arrives, one frame per channel: a 32-byte FrameHeader and its payload, then the next
// channel's. Each channel is a fake RawChannel that validates the header as every transport
// does (accept_header) and hands out the payload; receive_hello decodes it and HelloAssembler
// collects the session. Errors must name something; a complete session must hold exactly
// channel_count channels, ordered by index.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/toolkit/hello.h"
#include "dataplane/toolkit/raw_channel.h"

namespace {

using namespace tern;

// Receives one frame from the fuzz input, then reports the peer gone.
class FakeChannel : public toolkit::RawChannel {
 public:
  FakeChannel(const uint8_t*& p, size_t& left) : p_(p), left_(left) {}
  size_t post(const TxFrame*, size_t) override { return 0; }
  bool flush() override { return true; }
  size_t poll_tx() override { return 0; }
  size_t tx_pending() const override { return 0; }
  int wait_fd() const override { return -1; }
  size_t poll_rx(RxFrame* out, size_t max) override {
    if (max == 0 || failed()) return 0;
    if (done_ || left_ < sizeof(FrameHeader)) {
      fail_peer_closed();
      return 0;
    }
    done_ = true;
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
  bool done_ = false;
  std::vector<uint8_t> payload_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  toolkit::HelloAssembler assembler;
  const uint8_t* p = data;
  size_t left = size;
  // Every channel consumes at least a header, so this ends; a shorter tail is a peer that
  // connected and closed (one channel, then done).
  for (bool tail = false; !tail && left > 0 && !assembler.complete();) {
    tail = left < sizeof(FrameHeader);
    auto ch = std::make_unique<FakeChannel>(p, left);
    Result<HelloPayload> h = toolkit::receive_hello(*ch, toolkit::Clock::now());
    if (!h) {
      if (h.status().message().empty()) std::abort();
      continue;
    }
    Status s = assembler.add(std::move(ch), *h);
    if (!s.is_ok() && s.message().empty()) std::abort();
    if (assembler.progress().empty()) std::abort();
  }
  if (!assembler.complete()) return 0;
  ChannelSet set = assembler.take();
  if (set.size() < 3 || set.size() > toolkit::kMaxChannels) std::abort();
  for (size_t i = 0; i < set.size(); ++i) {
    if (!set[i] || set[i]->index() != i) std::abort();
  }
  return 0;
}
