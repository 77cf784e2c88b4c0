#include "dataplane/wire.h"

#include <cstring>

namespace tern {

uint64_t Layout::total_bytes() const {
  uint64_t n = 0;
  for (auto& b : blocks) n += b.size;
  return n;
}

FrameHeader make_header(FrameType type, uint32_t block, uint64_t offset, uint32_t length,
                        uint32_t flags, uint32_t round, uint32_t channel) {
  FrameHeader h;
  h.magic = kWireMagic;
  h.version = kWireVersion;
  h.type = static_cast<uint8_t>(type);
  h.block = block;
  h.offset = offset;
  h.length = length;
  h.flags = flags;
  h.round = round;
  h.channel = channel;
  return h;
}

Status check_header(const FrameHeader& h) {
  if (h.magic != kWireMagic)
    return Status(Code::kProtocol, "bad frame magic 0x" + std::to_string(h.magic) +
                                       " (not a tern peer, or the stream lost framing)");
  if (h.version != kWireVersion)
    return Status(Code::kProtocol, "peer speaks wire version " + std::to_string(h.version) +
                                       ", this build speaks " + std::to_string(kWireVersion) +
                                       (h.version < kWireVersion
                                            ? " (the peer runs an older tern: upgrade it)"
                                            : " (the peer runs a newer tern: upgrade this one)"));
  switch (static_cast<FrameType>(h.type)) {
    case FrameType::kHello:
      if (h.length != sizeof(HelloPayload))
        return Status(Code::kProtocol, "hello frame with length " + std::to_string(h.length));
      return Status::ok();
    case FrameType::kPage:
      if (h.length == 0 || h.length > kHugePageBytes || h.length % kTargetPageSize)
        return Status(Code::kProtocol, "page frame with length " + std::to_string(h.length));
      return Status::ok();
    case FrameType::kZero:
      if (h.length == 0 || h.length > kMaxZeroRange || h.length % kTargetPageSize)
        return Status(Code::kProtocol, "zero frame with length " + std::to_string(h.length));
      return Status::ok();
    case FrameType::kRoundEnd:
      if (h.length != 0) return Status(Code::kProtocol, "round-end frame with a payload");
      return Status::ok();
    case FrameType::kRequest:
      if (h.length != kTargetPageSize && h.length != 0)
        return Status(Code::kProtocol, "request frame with length " + std::to_string(h.length));
      return Status::ok();
    case FrameType::kControl:
      if (h.length > kMaxControlPayload)
        return Status(Code::kProtocol, "control frame of " + std::to_string(h.length) +
                                           " bytes exceeds the limit");
      return Status::ok();
  }
  return Status(Code::kProtocol, "unknown frame type " + std::to_string(h.type));
}

Status check_page_frame(const FrameHeader& h, const Layout& layout) {
  if (h.block >= layout.blocks.size())
    return Status(Code::kProtocol, "frame for block " + std::to_string(h.block) +
                                       " but the layout has " +
                                       std::to_string(layout.blocks.size()) + " block(s)");
  const BlockInfo& b = layout.blocks[h.block];
  uint64_t len = h.length == 0 ? kTargetPageSize : h.length;
  if (h.offset % kTargetPageSize)
    return Status(Code::kProtocol, "frame offset " + std::to_string(h.offset) +
                                       " is not target-page aligned");
  if (h.offset >= b.size || len > b.size - h.offset)
    return Status(Code::kProtocol, "frame [" + std::to_string(h.offset) + ", +" +
                                       std::to_string(len) + ") lies outside block '" + b.name +
                                       "' of " + std::to_string(b.size) + " bytes");
  const bool zero_range = static_cast<FrameType>(h.type) == FrameType::kZero &&
                          len > b.host_page_size - h.offset % b.host_page_size;
  if (zero_range) {
    if (h.offset % b.host_page_size || len % b.host_page_size || len > kMaxZeroRange)
      return Status(Code::kProtocol, "zero range [" + std::to_string(h.offset) + ", +" +
                                         std::to_string(len) + ") is not whole host pages of '" +
                                         b.name + "'");
    return Status::ok();
  }
  const bool page_run = static_cast<FrameType>(h.type) == FrameType::kPage &&
                        b.host_page_size == kTargetPageSize && len <= kMaxPageRun;
  if (!page_run && h.offset % b.host_page_size + len > b.host_page_size)
    return Status(Code::kProtocol, "frame at offset " + std::to_string(h.offset) +
                                       " crosses a host page boundary of block '" + b.name + "'");
  return Status::ok();
}

namespace {
struct Writer {
  std::vector<uint8_t> out;
  void u32(uint32_t v) { put(&v, 4); }
  void u64(uint64_t v) { put(&v, 8); }
  void put(const void* p, size_t n) {
    auto* b = static_cast<const uint8_t*>(p);
    out.insert(out.end(), b, b + n);
  }
};
struct Reader {
  const uint8_t* p;
  size_t n;
  bool ok = true;
  template <typename T>
  T get() {
    T v{};
    if (n < sizeof(T)) {
      ok = false;
      return v;
    }
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    n -= sizeof(T);
    return v;
  }
};
}  // namespace

std::vector<uint8_t> encode_layout(const Layout& layout) {
  Writer w;
  w.u32(static_cast<uint32_t>(layout.blocks.size()));
  for (auto& b : layout.blocks) {
    w.u32(static_cast<uint32_t>(b.name.size()));
    w.put(b.name.data(), b.name.size());
    w.u64(b.size);
    w.u32(b.host_page_size);
  }
  return w.out;
}

Result<Layout> decode_layout(const uint8_t* data, size_t size) {
  Reader r{data, size};
  uint32_t n = r.get<uint32_t>();
  if (!r.ok || n == 0 || n > 1024)
    return Status(Code::kProtocol, "layout announces " + std::to_string(n) + " blocks");
  Layout l;
  for (uint32_t i = 0; i < n; ++i) {
    uint32_t name_len = r.get<uint32_t>();
    if (!r.ok || name_len > 256 || name_len > r.n)
      return Status(Code::kProtocol, "layout block name too long or truncated");
    BlockInfo b;
    b.name.assign(reinterpret_cast<const char*>(r.p), name_len);
    r.p += name_len;
    r.n -= name_len;
    b.size = r.get<uint64_t>();
    b.host_page_size = r.get<uint32_t>();
    if (!r.ok) return Status(Code::kProtocol, "layout truncated");
    if (b.host_page_size != kTargetPageSize && b.host_page_size != kHugePageBytes)
      return Status(Code::kProtocol, "block '" + b.name + "' has host page size " +
                                         std::to_string(b.host_page_size));
    if (b.size == 0 || b.size % b.host_page_size || b.size > (uint64_t{1} << 46))
      return Status(Code::kProtocol, "block '" + b.name + "' has size " + std::to_string(b.size));
    l.blocks.push_back(std::move(b));
  }
  if (r.n != 0) return Status(Code::kProtocol, "layout has trailing bytes");
  return l;
}

std::vector<uint8_t> encode_ranges(const std::vector<Range>& ranges) {
  Writer w;
  w.u64(ranges.size());
  for (auto& r : ranges) {
    w.u32(r.block);
    w.u64(r.offset);
    w.u64(r.length);
  }
  return w.out;
}

Result<std::vector<Range>> decode_ranges(const uint8_t* data, size_t size, const Layout& layout) {
  Reader r{data, size};
  uint64_t n = r.get<uint64_t>();
  if (!r.ok || n > size / 20) return Status(Code::kProtocol, "range list count is wrong");
  std::vector<Range> out;
  out.reserve(n);
  for (uint64_t i = 0; i < n; ++i) {
    Range x;
    x.block = r.get<uint32_t>();
    x.offset = r.get<uint64_t>();
    x.length = r.get<uint64_t>();
    if (!r.ok) return Status(Code::kProtocol, "range list truncated");
    if (x.block >= layout.blocks.size())
      return Status(Code::kProtocol, "range names block " + std::to_string(x.block));
    const BlockInfo& b = layout.blocks[x.block];
    if (x.offset % b.host_page_size || x.length % b.host_page_size || x.offset > b.size ||
        x.length > b.size - x.offset)
      return Status(Code::kProtocol, "range [" + std::to_string(x.offset) + ", +" +
                                         std::to_string(x.length) + ") is not host pages of '" +
                                         b.name + "'");
    out.push_back(x);
  }
  if (r.n != 0) return Status(Code::kProtocol, "range list has trailing bytes");
  return out;
}

}  // namespace tern
