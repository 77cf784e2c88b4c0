// libFuzzer target: the hello exchange's receiving side (dataplane/toolkit/hello.h). The input
// is what arrives, one frame per channel: a 32-byte FrameHeader and its payload, then the next
// channel's. Each channel is an InputChannel (input_channel.h) that validates the header as every
// transport does (accept_header) and hands out the payload; receive_hello decodes it and HelloAssembler
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
#include "tests/fuzz/input_channel.h"

namespace {

using namespace tern;

using fuzzing::InputChannel;

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  toolkit::HelloAssembler assembler;
  const uint8_t* p = data;
  size_t left = size;
  // Every channel consumes at least a header, so this ends; a shorter tail is a peer that
  // connected and closed (one channel, then done).
  for (bool tail = false; !tail && left > 0 && !assembler.complete();) {
    tail = left < sizeof(FrameHeader);
    auto ch = std::make_unique<InputChannel>(p, left, 1);  // one frame, then closed
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
