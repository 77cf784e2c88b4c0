// The landing's cold half: refusal messages and RDMA grant clipping (landing.h).
#include "dataplane/landing.h"

#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace tern {

Status Landing::refusal(const FrameHeader& h, LandingRefusal why) const {
  const bool zero = static_cast<FrameType>(h.type) == FrameType::kZero;
  std::string m = std::string(zero ? "zero run" : "page frame") + " for block " +
                  std::to_string(h.block) + " offset " + std::to_string(h.offset) + " length " +
                  std::to_string(h.length) + " lies outside the landing: ";
  const BlockLanding* b = h.block < blocks_.size() ? &blocks_[h.block] : nullptr;
  switch (why) {
    case LandingRefusal::kNoBlock:
      m += "the layout has " + std::to_string(blocks_.size()) + " block(s)";
      break;
    case LandingRefusal::kUnaligned:
      m += "offset and length must be whole target pages of " + std::to_string(kTargetPageSize) +
           " bytes, length at least one";
      break;
    case LandingRefusal::kOutsideBlock:
      m += "the block ends at " + std::to_string(b ? b->size : 0) + " bytes";
      break;
    case LandingRefusal::kCrossesHostPage:
      m += "it crosses a host page boundary (host pages of " +
           std::to_string(b ? b->host_page_size : 0) + " bytes)";
      break;
    case LandingRefusal::kNone:
      m += "no reason given (a caller's bug)";
      break;
  }
  return Status(Code::kProtocol, std::move(m));
}

bool Landing::write_file(uint8_t* dst, const uint8_t* src, size_t n) const {
  for (const BlockLanding& b : blocks_) {
    if (b.file < 0 || dst < b.base || dst >= b.base + b.size) continue;
    uint64_t at = b.file_offset + static_cast<uint64_t>(dst - b.base);
    while (n > 0) {
      const ssize_t w = pwrite(b.file, src, n, static_cast<off_t>(at));
      if (w < 0 && errno == EINTR) continue;
      if (w <= 0) return false;  // the caller stores all n bytes (the written ones again)
      at += static_cast<uint64_t>(w);
      n -= static_cast<size_t>(w);
      src += w;
    }
    return true;
  }
  return false;
}

WritableSpan Landing::remote_writable(const FrameHeader& h, const uint8_t* reg,
                                      uint64_t reg_len) const {
  if (!accepts_remote_writes()) return {};
  const uint8_t* dst = resolve(h);
  if (dst == nullptr || reg == nullptr) return {};
  // The frame's bytes must lie inside the region (compared as offsets: no pointer past an end).
  const auto r = reinterpret_cast<uintptr_t>(reg);
  const auto d = reinterpret_cast<uintptr_t>(dst);
  if (d < r || d - r > reg_len || h.length > reg_len - (d - r)) return {};
  const BlockLanding& b = blocks_[h.block];
  const auto bb = reinterpret_cast<uintptr_t>(b.base);
  const uintptr_t begin = std::max(r, bb);
  const uintptr_t end = std::min(r + reg_len, bb + b.size);
  return {b.base + (begin - bb), begin - bb, end - begin};
}

}  // namespace tern
