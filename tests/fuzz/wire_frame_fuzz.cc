// libFuzzer target: the wire frame header checks (dataplane/wire.h). Input: a 32-byte
// FrameHeader, then layout bytes (encode_layout form; the fixed fuzz layout when they do not
// decode). check_header must accept only frames within the bounds of their type, and
// check_page_frame only frames that lie inside one block (inside one host page, or whole host
// pages for a zero range or a page run): anything it accepts is checked here against the layout by hand.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dataplane/toolkit/raw_channel.h"
#include "dataplane/wire.h"
#include "tests/fuzz/fuzz_layouts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  if (size < sizeof(FrameHeader)) return 0;
  FrameHeader h;
  std::memcpy(&h, data, sizeof h);
  Status hs = check_header(h);
  if (!hs.is_ok()) {
    if (hs.message().empty()) std::abort();
    return 0;
  }
  if (h.magic != kWireMagic || h.version != kWireVersion) std::abort();
  const uint32_t payload = toolkit::payload_length(h);
  const auto type = static_cast<FrameType>(h.type);
  switch (type) {
    case FrameType::kHello: if (payload != sizeof(HelloPayload)) std::abort(); break;
    case FrameType::kPage:
      if (payload == 0 || payload > kHugePageBytes || payload % kTargetPageSize) std::abort();
      break;
    case FrameType::kZero:
    case FrameType::kRoundEnd:
    case FrameType::kRequest: if (payload != 0) std::abort(); break;
    case FrameType::kControl: if (payload > kMaxControlPayload) std::abort(); break;
    default: std::abort();  // check_header let an unknown type through
  }
  if (type != FrameType::kPage && type != FrameType::kZero && type != FrameType::kRequest) return 0;

  Result<Layout> decoded = decode_layout(data + sizeof h, size - sizeof h);
  const Layout layout = decoded ? *decoded : fuzz::default_layout();
  if (!check_page_frame(h, layout).is_ok()) return 0;
  // Accepted: it must address whole target pages inside one block.
  if (h.block >= layout.blocks.size()) std::abort();
  const BlockInfo& b = layout.blocks[h.block];
  const uint64_t len = h.length == 0 ? kTargetPageSize : h.length;
  if (h.offset % kTargetPageSize || len % kTargetPageSize) std::abort();
  if (h.offset >= b.size || len > b.size || h.offset + len > b.size) std::abort();
  const uint64_t first_host_page = h.offset / b.host_page_size;
  const uint64_t last_host_page = (h.offset + len - 1) / b.host_page_size;
  if (first_host_page != last_host_page) {
    // Only a zero range or a page run may span host pages, and then it covers whole ones: a
    // zero range up to kMaxZeroRange, a page run (kPage) of 4 KiB host pages up to kMaxPageRun.
    if (h.offset % b.host_page_size || len % b.host_page_size) std::abort();
    if (type == FrameType::kZero) {
      if (len > kMaxZeroRange) std::abort();
    } else if (type == FrameType::kPage) {
      if (b.host_page_size != kTargetPageSize || len > kMaxPageRun) std::abort();
    } else {
      std::abort();
    }
  }
  return 0;
}
