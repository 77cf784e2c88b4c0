#include "vm/dirty_ring.h"

namespace tern {

DirtyRing::DirtyRing(uint32_t entries)
    : mask_(entries - 1), entries_(new DirtyGfn[entries]) {}

void DirtyRing::wait_not_full() {
  uint64_t h = head_.load(std::memory_order_relaxed);
  while (true) {
    uint64_t t = tail_.load(std::memory_order_acquire);
    if (h - t <= mask_) return;
    tail_.wait(t, std::memory_order_acquire);  // returns once tail_ != t (or spuriously)
  }
}

size_t DirtyRing::harvest(std::vector<DirtyGfn>& out) {
  uint64_t t = tail_.load(std::memory_order_relaxed);  // only harvesters write tail_
  uint64_t h = head_.load(std::memory_order_acquire);  // pairs with push()'s release
  if (h == t) return 0;
  for (uint64_t i = t; i != h; ++i) out.push_back(entries_[i & mask_]);
  tail_.store(h, std::memory_order_release);  // entries read; the vCPU may reuse them
  tail_.notify_all();
  return static_cast<size_t>(h - t);
}

}  // namespace tern
