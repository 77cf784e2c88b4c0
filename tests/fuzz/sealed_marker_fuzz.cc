// libFuzzer target: a keyed bulk channel's receiving side opening what a peer sends on it
// (engine/marker_seal.h, engine/page_integrity.h): sealed markers (round ends, page tags) and
// page frames checked against the tag before them, as the destination's receiver does. The
// input is the frames of channel 2 after the handshake (a 32-byte FrameHeader and its payload
// each), validated by the channel as every transport does (input_channel.h); the receive key is
// 32 bytes of 0x6b, so the seeds (make_seeds.py) are real markers that the fuzzer mutates.
// What must hold: no input crashes; a marker that opens names this channel, passes check_header
// and is a round end or tags a page; a page frame verifies only after a tag naming exactly its
// header; a refusal is described.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dataplane/engine/page_integrity.h"
#include "tests/fuzz/input_channel.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  using engine::MarkerOpener;
  constexpr uint32_t kChannel = kFirstBulkChannel;
  uint8_t key[kSessionKeyBytes];
  std::memset(key, 0x6b, sizeof(key));
  const uint8_t* p = data;
  size_t left = size;
  fuzzing::InputChannel ch(p, left, SIZE_MAX);
  ch.set_index(kChannel);
  ch.open_control_limit();
  MarkerOpener opener(key);
  engine::PageTagCheck tags(opener);
  // Precopy's lenient mode for the first half of the frames, postcopy's strict one after.
  const size_t frames = size / sizeof(FrameHeader) + 2;
  for (size_t i = 0; i < frames; ++i) {
    RxFrame f;
    if (ch.poll_rx(&f, 1) != 1) break;
    const bool strict = i >= frames / 2;
    const auto type = static_cast<FrameType>(f.hdr.type);
    if (engine::is_sealed_frame(f.hdr) && f.hdr.block == engine::kMarkerTagsNext &&
        f.hdr.length == engine::kSealedMarkerBytes && f.data) {
      if (!tags.keep(f.hdr, f.data)) break;  // two tags in a row: the receiver fails
      continue;
    }
    if (type == FrameType::kPage || type == FrameType::kZero) {
      const bool had = tags.kept_tag() != nullptr;
      const auto v = tags.check(f.hdr, f.data, strict);
      if (v == engine::PageTagCheck::Verdict::kVerified && !had) std::abort();
      if ((v == engine::PageTagCheck::Verdict::kNoTag) == had) std::abort();
      if (tags.kept_tag() != nullptr) std::abort();  // a check uses up the tag
      if (v != engine::PageTagCheck::Verdict::kVerified && strict) break;
      continue;
    }
    FrameHeader inner;
    const uint64_t seq = opener.opened();
    const auto why = opener.open(f.hdr, f.data, nullptr, 0, &inner);
    if (why != MarkerOpener::Refusal::kNone) {
      if (MarkerOpener::describe("round end", why, seq, kChannel).empty()) std::abort();
      if (opener.opened() != seq) std::abort();  // a refusal does not advance
      break;
    }
    if (opener.opened() != seq + 1) std::abort();
    if (inner.channel != kChannel || !check_header(inner).is_ok()) std::abort();
    if (engine::tags_page(inner)) std::abort();  // a tag is only ever kept, never opened alone
  }
  return 0;
}
