// Memory registered for zero-copy sends: address ranges and their local keys, looked up on the
// data path (no allocation, no locks: see the threading note).
//
// Threads: add() runs on the transport's control thread before the workers that look up start
// (the engine registers guest RAM in setup, then starts its workers); lookups are read-only.
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <vector>

namespace tern::rdma {

class MemoryMap {
 public:
  void add(const void* addr, size_t len, uint32_t lkey) {
    const auto b = reinterpret_cast<uintptr_t>(addr);
    ranges_.push_back({b, b + len, lkey});
    std::sort(ranges_.begin(), ranges_.end(),
              [](const Range& x, const Range& y) { return x.begin < y.begin; });
  }
  // The lkey of a registered range holding all of [addr, addr + len), or false.
  bool lookup(const void* addr, size_t len, uint32_t* lkey) const {
    const auto a = reinterpret_cast<uintptr_t>(addr);
    auto it = std::upper_bound(ranges_.begin(), ranges_.end(), a,
                               [](uintptr_t v, const Range& r) { return v < r.begin; });
    if (it == ranges_.begin()) return false;
    --it;
    if (a + len > it->end) return false;
    *lkey = it->lkey;
    return true;
  }
  bool empty() const { return ranges_.empty(); }

 private:
  struct Range {
    uintptr_t begin, end;
    uint32_t lkey;
  };
  std::vector<Range> ranges_;
};

}  // namespace tern::rdma
