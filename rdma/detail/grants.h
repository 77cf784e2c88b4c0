// Direct placement grants as plain data (no verbs), unit-tested anywhere.
//
// In precopy without postcopy armed, a destination channel registers guest RAM for remote write
// on demand (one 64 MiB chunk of memory_map.h at a time, when the first frame of that chunk
// arrives through the slots) and grants it to its sender: it RDMA-writes a GrantEntry into the
// sender's grant table (a fixed place in the sender's control region, whose address and rkey
// already travel in the CM private data). Entry i is written once, last field `seq` = i + 1, so
// the sender imports entries in order while `seq` matches. The sender then writes page payloads
// that lie wholly inside a grant straight to their place and announces them in batches of
// headers (SlotKind::kPlaced). A grant is a place in one block of the receiver's Landing.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace tern::rdma::detail {

struct GrantEntry {
  uint64_t addr = 0;    // receiver's address of block offset `offset`
  uint64_t offset = 0;  // block offset where the grant starts
  uint32_t length = 0;  // bytes granted
  uint32_t rkey = 0;
  uint32_t block = 0;
  uint32_t seq = 0;     // index + 1 once written
};
static_assert(sizeof(GrantEntry) == 32);

inline constexpr uint32_t kMaxGrants = 1024;  // 64 GiB of 64 MiB chunks per channel
// The control region of a connection: credit word (peer writes), credit source, then the grant
// table (peer writes) and this side's grant entries (the source of its grant writes).
inline constexpr size_t kGrantTableOffset = 64;
inline constexpr size_t kGrantSourceOffset = kGrantTableOffset + kMaxGrants * sizeof(GrantEntry);
inline constexpr size_t kControlBytes = kGrantSourceOffset + kMaxGrants * sizeof(GrantEntry);
// RingInfo::features bit: this side accepts grants and kPlaced notifications.
inline constexpr uint32_t kFeatureGrants = 1;
// Headers one kPlaced notification carries at most.
inline constexpr uint32_t kMaxPlacedBatch = 32;

// Grants by (block, offset): both sides keep one, the receiver of what it granted, the sender of
// what it imported. Lookups are O(1): buckets of `bucket` bytes of block offset.
class GrantTable {
 public:
  explicit GrantTable(uint64_t bucket) : bucket_(bucket) {}
  void add(const GrantEntry& g) {
    if (g.length == 0) return;
    if (g.block >= blocks_.size()) blocks_.resize(g.block + 1);
    auto& b = blocks_[g.block];
    const uint64_t last = (g.offset + g.length - 1) / bucket_;
    if (b.size() <= last) b.resize(last + 1, kNone);
    const auto index = static_cast<uint32_t>(grants_.size());
    grants_.push_back(g);
    for (uint64_t k = g.offset / bucket_; k <= last; ++k)
      if (b[k] == kNone) b[k] = index;  // a bucket shared by two grants keeps the first
  }
  // The grant holding all of [offset, offset + length) of `block`, or nullptr.
  const GrantEntry* find(uint32_t block, uint64_t offset, uint64_t length) const {
    if (block >= blocks_.size() || length == 0) return nullptr;
    const auto& b = blocks_[block];
    const uint64_t k = offset / bucket_;
    if (k >= b.size() || b[k] == kNone) return nullptr;
    const GrantEntry& g = grants_[b[k]];
    return covers(g, block, offset, length) ? &g : nullptr;
  }
  size_t size() const { return grants_.size(); }

 private:
  static constexpr uint32_t kNone = UINT32_MAX;
  static bool covers(const GrantEntry& g, uint32_t block, uint64_t offset, uint64_t length) {
    return g.block == block && offset >= g.offset && length <= g.length &&
           offset - g.offset <= g.length - length;
  }
  uint64_t bucket_;
  std::vector<GrantEntry> grants_;
  std::vector<std::vector<uint32_t>> blocks_;  // [block][offset / bucket_] -> grant index
};

}  // namespace tern::rdma::detail
