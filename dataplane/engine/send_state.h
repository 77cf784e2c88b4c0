// State shared by the source's control thread and its sender pollers.
//
// Ownership: created by the control thread before workers start and destroyed after they stop.
// Fields marked (ctl) are written by the control thread only, between rounds; (any) are atomics
// touched by every worker; (slot k) only by the worker that owns bulk channel k, read by others.
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/ram_block.h"

namespace tern::engine {

// A host page named by block and host page index, packed for atomic slots; 0 = none.
inline uint64_t page_key(uint32_t block, uint64_t hp) { return (uint64_t{block} << 48 | hp) + 1; }
inline uint32_t key_block(uint64_t key) { return static_cast<uint32_t>((key - 1) >> 48); }
inline uint64_t key_page(uint64_t key) { return (key - 1) & ((uint64_t{1} << 48) - 1); }

// Per bulk channel: which host page it is sending (S3 looks it up) and whether a request has
// raised that page's urgency.
struct alignas(64) BulkSlot {
  std::atomic<uint64_t> in_progress{0};  // (slot k) page_key of the partly sent page, or 0
  std::atomic<bool> raised{false};       // (any) set: finish in_progress now, flagged urgent
  std::atomic<uint32_t> round_done{0};   // (slot k) last round whose kRoundEnd was posted
};

// Counters, summed over senders by the control thread. Relaxed atomics: statistics only.
struct alignas(64) SendCounters {
  std::atomic<uint64_t> bytes{0};         // header + payload bytes posted
  std::atomic<uint64_t> normal_pages{0};  // target pages sent with data
  std::atomic<uint64_t> zero_pages{0};    // target pages sent as zero markers
  std::atomic<uint64_t> zero_range_frames{0};  // frames for never-populated runs (not read)
  std::atomic<uint64_t> precopy_bytes{0};
  std::atomic<uint64_t> postcopy_bytes{0};
  std::atomic<uint64_t> host_pages{0};
  std::atomic<uint64_t> urgent_pages{0};
  std::atomic<uint64_t> preemptions{0};
  std::atomic<uint64_t> requests{0};
  std::atomic<uint64_t> raised{0};
  std::atomic<uint64_t> stale_requests{0};  // requested pages already sent whole: sent again
};

struct SendState {
  SendState(std::vector<RamBlock*> blocks, uint32_t bulk_channels);

  std::vector<RamBlock*> blocks;       // (ctl, fixed) guest RAM
  std::vector<uint64_t> block_start;   // (fixed) first global host page of each block
  uint64_t total_host_pages = 0;       // (fixed)
  MigrationBitmap dirty;               // (any) host pages still to send; claim = test-and-clear
  MigrationBitmap sent;                // (any) host pages sent at least once (for discard)
  // S5: host pages skipped as free and never sent, marked at the switch to postcopy (ctl, the
  // source guest paused): the final round sends them as zero ranges, never read, so that
  // every page is in place at the destination (a free page's content is undefined).
  MigrationBitmap free_zero;

  // The round being sent. Workers take stripes of the global host-page space from `cursor`.
  std::atomic<uint32_t> round{0};       // (ctl) current dirty round, 0 = not sending
  std::atomic<uint64_t> cursor{0};      // (any) next global host page to scan
  std::atomic<bool> postcopy{false};    // (ctl) final round of postcopy: requests are served
  std::atomic<bool> preempt{false};     // (ctl) urgent pages may cut into a huge page (S1)
  std::atomic<bool> stop{false};        // (ctl) cancel: senders stop sending
  std::atomic<uint64_t> max_bandwidth{0};  // (ctl) bytes/s for the whole source, 0 = unlimited
  uint32_t chunk_size = 64 * 1024;      // (ctl, fixed while running)
  // The destination takes page runs (wire.h, kLayoutAckPageRuns): in precopy a lane claims up
  // to a chunk of consecutive dirty 4 KiB host pages at once and sends them as one frame.
  bool page_runs = false;               // (fixed)
  // Page integrity (MigrationParameters::page_integrity): every page frame goes after its tag.
  bool page_integrity = false;          // (fixed)
  // Host pages a lane takes from the cursor at once: about kStripeBytes, at least one page, so
  // that channels share a round evenly and contend on the cursor rarely.
  static constexpr uint64_t kStripeBytes = 1 << 20;
  uint64_t stripe_pages = 1;            // (fixed)

  std::unique_ptr<BulkSlot[]> slots;    // one per bulk channel
  uint32_t bulk_channels;

  // Maps a global host page to (block, hp).
  void locate(uint64_t global, uint32_t* block, uint64_t* hp) const;
};

}  // namespace tern::engine
