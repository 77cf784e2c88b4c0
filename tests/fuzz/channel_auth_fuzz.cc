// libFuzzer target: the destination's side of the channel handshake (toolkit/channel_auth.h).
// The input is what a peer sends on one channel: frames (a 32-byte FrameHeader and its
// payload), the first read as the hello, the rest by the AuthResponder. The channel
// (input_channel.h) validates headers as every transport does (accept_header, with the
// pre-authentication bound). No input may authenticate (the destination's nonce is fresh and random, the key unknown to the
// input), and every refusal must say why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "dataplane/toolkit/channel_auth.h"
#include "tests/fuzz/input_channel.h"

namespace {

using namespace tern;

using fuzzing::InputChannel;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto key = [] {
    auto k = std::make_shared<PeerKey>();
    k->bytes.assign(32, 0x6b);
    k->origin = "fuzz key";
    return std::shared_ptr<const PeerKey>(k);
  }();
  const uint8_t* p = data;
  size_t left = size;
  InputChannel ch(p, left, SIZE_MAX);
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
