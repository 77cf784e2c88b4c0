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
#include "dataplane/fresh_array.h"
#include "dataplane/histogram.h"
#include "dataplane/landing.h"
#include "dataplane/page_cache_view.h"
#include "dataplane/ram_block.h"
#include "dataplane/uffd.h"
#include "dataplane/wire.h"

namespace tern::engine {

struct RecvCounters {
  std::atomic<uint64_t> bytes{0};          // frame bytes received
  std::atomic<uint64_t> normal_pages{0};   // target pages received with data
  std::atomic<uint64_t> zero_pages{0};     // target pages received as zero markers
  std::atomic<uint64_t> placed_pages{0};   // host pages placed by userfaultfd (postcopy)
  std::atomic<uint64_t> installed_pages{0};  // of which from the page cache (UFFDIO_CONTINUE)
  std::atomic<uint64_t> requests{0};       // page requests sent
  std::atomic<uint64_t> local_zero{0};     // faults on received zero pages, placed locally
  std::atomic<uint64_t> precopy_bytes{0};
  std::atomic<uint64_t> postcopy_bytes{0};
  // Page integrity: page frames whose tag did not open in precopy (page_integrity.h).
  std::atomic<uint64_t> unverified_frames{0};
};

struct RecvState {
  RecvState(std::vector<RamBlock*> blocks, Layout layout);

  std::vector<RamBlock*> blocks;  // (ctl, fixed) destination guest RAM
  Layout layout;                  // (fixed)
  Landing direct;                 // (fixed) precopy: payloads land in guest RAM
  // Host pages whose latest version is in guest RAM (set when a host page's last frame lands).
  MigrationBitmap received;
  // Per block, per host page: steady-clock ns of the first unanswered fault, 0 = none.
  std::vector<FreshAtomicArray<uint64_t>> fault_time;  // fresh memory: untouched in precopy
  std::atomic<int64_t> outstanding{0};  // requests sent and not yet answered by a placement
  LatencyHistogram fault_latency;       // fault read -> page placed
  RecvCounters counters;
  Userfault* uffd = nullptr;            // (ctl) set at the switch to postcopy
  // (ctl, set at the switch) Zero-copy postcopy placement: per block, tern's own mapping of its
  // file, where pages land in the page cache and are installed with UFFDIO_CONTINUE; null where
  // they are staged and placed with UFFDIO_COPY.
  std::vector<std::unique_ptr<PageCacheView>> page_cache;
  // Host pages a receiver took to land in the page cache, or in place before the switch
  // (Landing::owns); null when no block uses the page cache.
  std::unique_ptr<MigrationBitmap> taken;
  // (fixed) Page integrity (page_integrity.h): set with enable_page_integrity() before the
  // receivers are made. unverified: host pages whose latest frame failed its check (precopy).
  bool page_integrity = false;
  std::unique_ptr<MigrationBitmap> unverified;
  // Test-only (marker_tamper.h, flip:page): the page whose every copy any bulk receiver changes
  // on the way, (block << 40 | offset / 4096) + 1, set by the receiver that took the hook;
  // 0 = none. So the change stays, whichever channel or round brings the page again.
  std::atomic<uint64_t> tampered_page{0};

  void enable_page_integrity();
  // Host pages still unverified, and the first of them (block, byte offset) when any.
  uint64_t unverified_pages(uint32_t* block, uint64_t* offset) const;

  // At the switch: creates `taken` holding the host pages received so far.
  void take_received();
  // Postcopy: block b's landing (its page cache mapping, if any) for a staged Landing.
  std::vector<BlockLanding> postcopy_landings();
  // Installs `count` host pages of block b from `first` out of the page cache into guest RAM
  // and wakes their waiters; `allocate` first makes holes zero-filled pages (nothing was
  // written). 0, -EEXIST (some already in place: the rest installed one by one) or -errno.
  int install(uint32_t b, uint64_t first, uint64_t count, bool allocate);

  // Block holding host address p, or -1.
  int block_of(const uint8_t* p) const;
  uint64_t total_host_pages() const;
  // A host page is now in place: mark it and account the fault latency of its waiters.
  void page_placed(uint32_t block, uint64_t hp);
  // Page cache blocks: host page hp is zero and still a hole here, and stays one (nothing
  // allocated or written: fresh memory is zero). Marked received; a thread already waiting on
  // it gets it installed now, a later touch is installed locally by the fault poller.
  // 0 or -errno of the install.
  int leave_hole(uint32_t block, uint64_t hp);
  // Accounts a fault answered now that was read at fault_ns (0 = none).
  void answered(uint64_t fault_ns);
};

uint64_t now_ns();

}  // namespace tern::engine
