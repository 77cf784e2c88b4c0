// libFuzzer target: a control link with session keys opening what a peer sends on it
// (engine/control_link.h over engine/frame_seal.h). The input is the frames of channel 0 after
// the handshake (a 32-byte FrameHeader and its payload each), validated by the channel as every
// transport does (input_channel.h); the link's receive key is 32 bytes of 0x6b, so the seeds
// (make_seeds.py) are real sealed frames that the fuzzer mutates. No input may crash; a
// message that opens carries at most kMaxControlPayload bytes; every refusal says why.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dataplane/engine/control_link.h"
#include "tests/fuzz/input_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  ChannelKeys keys;
  std::memset(keys.send, 0x73, sizeof(keys.send));
  std::memset(keys.recv, 0x6b, sizeof(keys.recv));
  const uint8_t* p = data;
  size_t left = size;
  fuzzing::InputChannel ch(p, left, SIZE_MAX);
  ch.set_index(kControlChannel);
  ch.open_control_limit();
  ch.set_keys(keys);
  engine::ControlLink link(&ch, engine::LinkSide::kDestination);
  if (!link.sealed()) std::abort();
  // Every poll consumes a frame or fails the link, so this ends.
  for (size_t i = 0; i < size / sizeof(FrameHeader) + 2; ++i) {
    auto m = link.poll();
    if (!m) break;
    if (m->payload.size() > kMaxControlPayload) std::abort();
  }
  if (!link.error().is_ok() && link.error().message().empty()) std::abort();
  return 0;
}
