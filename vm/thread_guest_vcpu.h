// Private to the thread guest: the per-vCPU record. Included by vm/thread_guest*.cc only.
#pragma once

#include <atomic>
#include <cstdint>
#include <thread>

#include "vm/dirty_ring.h"
#include "vm/ring_exit_record.h"
#include "vm/thread_guest.h"

namespace tern {

struct ThreadGuest::Vcpu {
  Vcpu(uint32_t i, uint32_t ring_entries) : index(i), ring(ring_entries) {}

  // Written at setup (control thread, before the thread starts).
  const uint32_t index;
  uint64_t first_page = 0;  // first target page of this vCPU's slice of the working set
  uint64_t pages = 0;       // pages in the slice (>= 1)
  uint64_t hot_pages = 0;   // hotset: the first hot_pages of the slice are hot (>= 1)
  bool reader = false;      // only reads (WorkloadSpec::readers)

  // Workload progress: the vCPU thread while it runs; the control thread while parked
  // (save_state / load_state), ordered by run_mu_.
  uint64_t rng = 0;     // xorshift64 state, never 0
  uint64_t cursor = 0;  // sequential pattern: next offset in the slice

  // Written by the vCPU thread only; read from any thread.
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> writes{0};
  std::atomic<uint64_t> reads{0};
  std::atomic<uint64_t> dirty_pushes{0};
  std::atomic<uint64_t> stall_ns{0};
  std::atomic<uint64_t> penalty_ns{0};
  std::atomic<uint64_t> frees{0};   // heap
  std::atomic<uint64_t> reuses{0};  // heap
  RingExitRecord exits;  // ring-full exits and the latest one (DirtyRingCounters)

  // Written by any thread (dirty limit controller); read by the vCPU at ring-full exits.
  std::atomic<uint64_t> penalty_us{0};

  bool parked = false;  // guarded by run_mu_
  DirtyRing ring;       // producer: this vCPU; consumers: reaper, collect_dirty (harvest_mu_)
  std::thread thread;
};

// Per-vCPU counter bump for single-writer atomics (no locked RMW on the hot path).
inline void bump(std::atomic<uint64_t>& c, uint64_t by = 1) {
  c.store(c.load(std::memory_order_relaxed) + by, std::memory_order_relaxed);
}

}  // namespace tern
