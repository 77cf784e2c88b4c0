// libFuzzer target: the layout and range-list decoders (dataplane/wire.h), which read what a
// source sends at the start of a migration and at the switch to postcopy. Input: u16 L, then L
// bytes of layout (encode_layout form), then a range list (encode_ranges form), checked
// against the decoded layout (the fixed fuzz layout when it does not decode). Whatever decodes
// must satisfy the documented bounds and encode back to exactly the input bytes.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "dataplane/wire.h"
#include "tests/fuzz/fuzz_layouts.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  if (size < 2) return 0;
  size_t layout_len = static_cast<size_t>(data[0]) | static_cast<size_t>(data[1]) << 8;
  data += 2;
  size -= 2;
  if (layout_len > size) layout_len = size;

  Result<Layout> decoded = decode_layout(data, layout_len);
  if (decoded) {
    const Layout& l = *decoded;
    if (l.blocks.empty() || l.blocks.size() > 1024) std::abort();
    for (const BlockInfo& b : l.blocks) {
      if (b.host_page_size != kTargetPageSize && b.host_page_size != kHugePageBytes) std::abort();
      if (b.size == 0 || b.size % b.host_page_size || b.name.size() > 256) std::abort();
    }
    std::vector<uint8_t> again = encode_layout(l);
    if (again.size() != layout_len || std::memcmp(again.data(), data, layout_len) != 0)
      std::abort();
    (void)l.total_bytes();
  } else if (decoded.status().message().empty()) {
    std::abort();
  }

  const Layout layout = decoded ? *decoded : fuzz::default_layout();
  const uint8_t* ranges = data + layout_len;
  const size_t ranges_len = size - layout_len;
  Result<std::vector<Range>> rs = decode_ranges(ranges, ranges_len, layout);
  if (!rs) return 0;
  for (const Range& r : *rs) {
    if (r.block >= layout.blocks.size()) std::abort();
    const BlockInfo& b = layout.blocks[r.block];
    if (r.offset % b.host_page_size || r.length % b.host_page_size) std::abort();
    if (r.offset > b.size || r.length > b.size - r.offset) std::abort();
  }
  std::vector<uint8_t> again = encode_ranges(*rs);
  if (again.size() != ranges_len ||
      (ranges_len && std::memcmp(again.data(), ranges, ranges_len) != 0))
    std::abort();
  return 0;
}
