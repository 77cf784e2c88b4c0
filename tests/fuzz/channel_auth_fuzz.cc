// libFuzzer target: the destination's side of the channel handshake (toolkit/channel_auth.h).
// The input is what a peer sends on one channel: frames (a 32-byte FrameHeader and its
// payload), the first read as the hello, the rest by the AuthResponder. The channel validates
// headers as every transport does (accept_header, with the pre-authentication bound). No input
// may authenticate (the destination's nonce is fresh and random, the key unknown to the
// input), and every refusal must say why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "dataplane/toolkit/channel_auth.h"
#include "dataplane/toolkit/raw_channel.h"

namespace {

using namespace tern;

// Hands out the input's frames one per poll_rx; takes (and drops) what is posted.
class InputChannel : public toolkit::RawChannel {
 public:
  InputChannel(const uint8_t* p, size_t n) : p_(p), left_(n) {}
  size_t post(const TxFrame*, size_t n) override { return n; }
  bool flush() override { return !failed(); }
  size_t poll_tx() override { return 0; }
  size_t tx_pending() const override { return 0; }
  int wait_fd() const override { return -1; }
  size_t poll_rx(RxFrame* out, size_t max) override {
    if (max == 0 || failed()) return 0;
    if (left_ < sizeof(FrameHeader)) {
      fail_peer_closed();
      return 0;
    }
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
  const uint8_t* p_;
  size_t left_;
  std::vector<uint8_t> payload_;
};

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto key = [] {
    auto k = std::make_shared<PeerKey>();
    k->bytes.assign(32, 0x6b);
    k->origin = "fuzz key";
    return std::shared_ptr<const PeerKey>(k);
  }();
  InputChannel ch(data, size);
  Result<HelloPayload> hello = toolkit::receive_hello(ch, toolkit::Clock::now());
  if (!hello) {
    if (hello.status().message().empty()) std::abort();
    return 0;
  }
  toolkit::AuthResponder responder(key, *hello);
  // Every poll consumes a frame or fails the channel, so this ends.
  for (size_t i = 0; i < size / sizeof(FrameHeader) + 2; ++i) {
    Result<bool> r = responder.poll(ch);
    if (!r) {
      if (r.status().message().empty()) std::abort();
      return 0;
    }
    if (*r) std::abort();  // authenticated without knowing the key or the nonce
  }
  return 0;
}
