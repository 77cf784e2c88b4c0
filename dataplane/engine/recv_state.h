// State shared by the destination's control thread, receiver pollers and fault poller.
//
// Ownership: created by the control thread once the layout arrives; workers stop before it
// is destroyed. (ctl) fields change only while workers are stopped; the rest are atomics.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/histogram.h"
#include "dataplane/landing.h"
#include "dataplane/ram_block.h"
#include "dataplane/uffd.h"
#include "dataplane/wire.h"

namespace tern::engine {

struct RecvCounters {
  std::atomic<uint64_t> bytes{0};          // frame bytes received
  std::atomic<uint64_t> normal_pages{0};   // target pages received with data
  std::atomic<uint64_t> zero_pages{0};     // target pages received as zero markers
  std::atomic<uint64_t> placed_pages{0};   // host pages placed by userfaultfd (postcopy)
  std::atomic<uint64_t> requests{0};       // page requests sent
  std::atomic<uint64_t> local_zero{0};     // faults on received zero pages, placed locally
  std::atomic<uint64_t> precopy_bytes{0};
  std::atomic<uint64_t> postcopy_bytes{0};
};

struct RecvState {
  RecvState(std::vector<RamBlock*> blocks, Layout layout);

  std::vector<RamBlock*> blocks;  // (ctl, fixed) destination guest RAM
  Layout layout;                  // (fixed)
  Landing direct;                 // (fixed) precopy: payloads land in guest RAM
  // Host pages whose latest version is in guest RAM (set when a host page's last frame lands).
  MigrationBitmap received;
  // Per block, per host page: steady-clock ns of the first unanswered fault, 0 = none.
  std::vector<std::unique_ptr<std::atomic<uint64_t>[]>> fault_time;
  std::atomic<int64_t> outstanding{0};  // requests sent and not yet answered by a placement
  LatencyHistogram fault_latency;       // fault read -> page placed
  RecvCounters counters;
  Userfault* uffd = nullptr;            // (ctl) set at the switch to postcopy

  // Block holding host address p, or -1.
  int block_of(const uint8_t* p) const;
  uint64_t total_host_pages() const;
  // A host page is now in place: mark it and account the fault latency of its waiters.
  void page_placed(uint32_t block, uint64_t hp);
};

uint64_t now_ns();

}  // namespace tern::engine
