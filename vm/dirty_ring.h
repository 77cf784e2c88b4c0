// Software dirty ring of one vCPU, shaped like KVM's (struct kvm_dirty_gfn: flags, slot,
// offset; a fixed power-of-two number of entries). The vCPU pushes one entry per newly dirtied
// target page; a harvester (the guest's reaper, or collect_dirty) pops them. A vCPU whose ring
// is full takes a "ring-full exit": it waits in wait_not_full() until a harvest frees entries.
//
// Threads: push() and wait_not_full() from the owning vCPU thread only (single producer).
// harvest() from any thread, but callers serialize harvests with one lock (single consumer at a
// time); the ring itself only orders producer against consumer:
//   producer: write entry[head], head.store(release)   consumer: head.load(acquire), read entries
//   consumer: tail.store(release) after reading         producer: tail.load(acquire) before reuse
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

namespace tern {

inline constexpr uint32_t kDirtyGfnDirty = 1u << 0;  // as KVM_DIRTY_GFN_F_DIRTY

struct DirtyGfn {
  uint32_t flags;
  uint32_t slot;    // RAM block index
  uint64_t offset;  // target page number inside the block
};

class DirtyRing {
 public:
  explicit DirtyRing(uint32_t entries);  // a power of two
  DirtyRing(const DirtyRing&) = delete;
  DirtyRing& operator=(const DirtyRing&) = delete;

  uint32_t capacity() const { return mask_ + 1; }

  // vCPU thread. Appends an entry; false (nothing written) when the ring is full.
  bool push(uint32_t slot, uint64_t offset) {
    uint64_t h = head_.load(std::memory_order_relaxed);  // only this thread writes head_
    if (h - tail_.load(std::memory_order_acquire) > mask_) return false;
    entries_[h & mask_] = DirtyGfn{kDirtyGfnDirty, slot, offset};
    head_.store(h + 1, std::memory_order_release);
    return true;
  }

  // vCPU thread. Blocks (futex wait, no spinning) until harvest() frees at least one entry.
  void wait_not_full();

  // Harvester (serialized by the caller). Appends every published entry to `out`, frees them
  // and wakes a vCPU waiting in wait_not_full(). Returns the number of entries taken.
  size_t harvest(std::vector<DirtyGfn>& out);

  // Any thread; approximate while the vCPU runs.
  uint64_t used() const {
    return head_.load(std::memory_order_acquire) - tail_.load(std::memory_order_acquire);
  }
  bool full() const { return used() > mask_; }

 private:
  const uint32_t mask_;
  std::unique_ptr<DirtyGfn[]> entries_;
  alignas(64) std::atomic<uint64_t> head_{0};  // written by the vCPU
  alignas(64) std::atomic<uint64_t> tail_{0};  // written by the harvester
};

}  // namespace tern
