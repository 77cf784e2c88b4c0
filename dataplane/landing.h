// Where received page payloads land. A plain table (no virtual calls) that a receiving channel
// consults for every kPage frame before it moves the payload: straight into guest RAM (precopy)
// or into the channel's staging host page (postcopy, S2). It is the one place that turns a
// peer's (block, offset, length) into an address, and it refuses anything outside the layout.
//
// Threads: written by the engine while the channel is quiescent (setup, mode switch); read by
// the channel's worker only.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/wire.h"

namespace tern {

struct BlockLanding {
  uint8_t* base = nullptr;       // guest RAM of the block on this host
  uint64_t size = 0;
  uint32_t host_page_size = 0;
};

class Landing {
 public:
  Landing() = default;
  explicit Landing(std::vector<BlockLanding> blocks) : blocks_(std::move(blocks)) {}

  // Postcopy: page payloads land in `staging` (one host page, of the largest host page size)
  // at the frame's offset within its host page. nullptr returns to direct landing.
  void set_staging(uint8_t* staging) { staging_ = staging; }
  uint8_t* staging() const { return staging_; }
  bool staged() const { return staging_ != nullptr; }

  // Address for the payload of a kPage frame, or nullptr if the frame does not lie inside one
  // host page of one block (a hostile or corrupt peer): the channel must then fail.
  uint8_t* resolve(const FrameHeader& h) const {
    if (h.block >= blocks_.size()) return nullptr;
    const BlockLanding& b = blocks_[h.block];
    const uint64_t hp = b.host_page_size;
    if (h.length == 0 || (h.offset % kTargetPageSize) != 0 || (h.length % kTargetPageSize) != 0)
      return nullptr;
    if (h.offset >= b.size || h.length > b.size - h.offset) return nullptr;
    const uint64_t in_page = h.offset % hp;
    if (h.length > hp - in_page) return nullptr;  // crosses a host page boundary
    return staging_ ? staging_ + in_page : b.base + h.offset;
  }

  const std::vector<BlockLanding>& blocks() const { return blocks_; }

 private:
  std::vector<BlockLanding> blocks_;
  uint8_t* staging_ = nullptr;
};

}  // namespace tern
