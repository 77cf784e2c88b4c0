// A vCPU's ring-full exits and the latest one's start time and page count, as
// DirtyRingCounters reports them (the dirty limit measures from exit to exit). Written by the
// vCPU's own thread like a seqlock; read, consistent, from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>

namespace tern {

class RingExitRecord {
 public:
  struct Snapshot {
    uint64_t exits = 0;
    uint64_t at_ns = 0;     // steady_clock, ns since its epoch; 0 = no exit yet
    uint64_t at_pages = 0;  // the vCPU's dirty-page count when it began
  };

  // vCPU thread only: one more exit, begun at `when`, after `dirty_pages` pages.
  void record(std::chrono::steady_clock::time_point when, uint64_t dirty_pages) {
    const uint64_t s = seq_.load(std::memory_order_relaxed);
    seq_.store(s + 1, std::memory_order_relaxed);  // odd: being written
    std::atomic_thread_fence(std::memory_order_release);
    at_ns_.store(static_cast<uint64_t>(when.time_since_epoch().count()),
                 std::memory_order_relaxed);
    at_pages_.store(dirty_pages, std::memory_order_relaxed);
    exits_.store(exits_.load(std::memory_order_relaxed) + 1, std::memory_order_relaxed);
    seq_.store(s + 2, std::memory_order_release);
  }

  // Any thread; retries while the vCPU is writing.
  Snapshot read() const {
    Snapshot r;
    uint64_t s;
    do {
      s = seq_.load(std::memory_order_acquire);
      r.exits = exits_.load(std::memory_order_relaxed);
      r.at_ns = at_ns_.load(std::memory_order_relaxed);
      r.at_pages = at_pages_.load(std::memory_order_relaxed);
      std::atomic_thread_fence(std::memory_order_acquire);
    } while ((s & 1) != 0 || s != seq_.load(std::memory_order_relaxed));
    return r;
  }

  uint64_t exits() const { return exits_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> seq_{0}, exits_{0}, at_ns_{0}, at_pages_{0};
};

}  // namespace tern
