// What the engine needs from a guest (the thread guest, the KVM guest): its RAM blocks, run
// control, dirty tracking and state save/restore. Implemented in vm/. (Checking the pages
// that arrived is the guest's own business: vm/self_check.h.)
//
// Threads: every method is called from the migration control thread only, except the dirty
// limit's, which say so.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/ram_block.h"
#include "dataplane/status.h"
#include "dataplane/uffd.h"
#include "dataplane/wire.h"

namespace tern {

// Cumulative per-vCPU dirty-ring counters (monotonic since the guest was created).
struct DirtyRingCounters {
  uint64_t dirty_pages = 0;      // entries pushed into the vCPU's dirty ring
  uint64_t ring_full_exits = 0;  // exits because the ring was full
  uint64_t ring_full_ns = 0;     // time spent in ring-full exits (harvest wait + penalty)
  uint64_t penalty_ns = 0;       // part of ring_full_ns slept as dirty-limit penalty
  uint64_t ops = 0;              // guest operations completed (reads and writes), for speed
  // The latest ring-full exit: when it began (steady_clock, ns since its epoch; 0 = none yet) and
  // dirty_pages at that moment, consistent with ring_full_exits. Windows from exit to exit
  // span whole ring rounds, which is what the dirty limit measures.
  uint64_t last_exit_ns = 0;
  uint64_t pages_at_last_exit = 0;
};

class Guest {
 public:
  virtual ~Guest() = default;

  // The guest's RAM, fixed for its lifetime.
  virtual const std::vector<RamBlock*>& ram() const = 0;
  Layout layout() const;

  // Starts (or resumes) the vCPUs.
  virtual Status start() = 0;
  // Returns once every vCPU is stopped at a point where guest memory is consistent.
  virtual void pause() = 0;
  virtual bool running() const = 0;

  // Dirty tracking. collect_dirty reports, into `bitmap`, every target page written since the
  // previous call (or since start_dirty_log); a write that completed before the call began is
  // always reported. Returns the number of target pages reported.
  virtual Status start_dirty_log() = 0;
  virtual void stop_dirty_log() = 0;
  virtual uint64_t collect_dirty(MigrationBitmap& bitmap) = 0;

  // Free page hinting (S5), optional: a guest without it reports nothing. The guest reports the
  // pages it freed (its allocator's free lists, as virtio-balloon's free page hinting does for
  // Linux); the engine skips them unless they are written again, which the dirty log shows.
  // Contract, which the engine's filter relies on (dataplane/engine/free_page_filter.h):
  //  - take_free_pages appends, as target-page-aligned ranges of guest RAM (block, byte offset,
  //    length), the pages freed since the previous take (or since start_free_page_reporting)
  //    and free at the moment of the take; a page the guest reused after freeing it is not
  //    reported until freed again (or, the KVM guest's weaker form, which the filter's order
  //    also needs no more than: every write after a report taken here reaches a collect_dirty
  //    that follows this take). Returns the target pages appended.
  //  - A write to a reported page that follows its take shows up in a later collect_dirty
  //    (the dirty log must be on before start_free_page_reporting: the engine starts it first).
  //  - The guest never waits for the host, and keeps no reserve of free pages.
  // Ranges are the guest's word: the engine checks them against ram() and refuses the rest.
  virtual bool reports_free_pages() const { return false; }
  virtual Status start_free_page_reporting() { return Status::ok(); }
  virtual uint64_t take_free_pages(std::vector<Range>& out) {
    (void)out;
    return 0;
  }
  virtual void stop_free_page_reporting() {}

  // vCPU and device state moved at switchover; load_state before start() on the destination.
  virtual std::vector<uint8_t> save_state() = 0;
  virtual Status load_state(const std::vector<uint8_t>& state) = 0;

  // A guest whose vCPUs run in another process (a VMM attached to ternd, control/
  // attached_guest.h) may be lost mid-migration: failure() says why (ok while it lives). The
  // source engine checks it with its own health. Any thread.
  virtual Status failure() const { return Status::ok(); }
  // Destination, postcopy: the userfaultfd for guest RAM when the vCPUs run in another process
  // that maps the RAM itself and handed its userfaultfd over (Userfault::adopt); nullptr: the
  // engine opens its own, guest RAM being this process's mapping.
  virtual Result<std::unique_ptr<Userfault>> postcopy_userfault() {
    return std::unique_ptr<Userfault>();
  }

  // Short description for logs and summaries ("threads: 2 vCPUs, 1 GiB, 4K pages").
  virtual std::string describe() const = 0;

  // Dirty limit (S4). A guest whose vCPUs log writes into a dirty ring counts, per vCPU, the
  // entries logged and the ring-full exits, and sleeps the penalty set here at each ring-full
  // exit. Guests without a ring return 0 vCPUs and ignore penalties. Any thread may call these.
  virtual uint32_t dirty_limit_vcpus() const { return 0; }
  virtual DirtyRingCounters dirty_ring_counters(uint32_t vcpu) const {
    (void)vcpu;
    return {};
  }
  virtual void set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) {
    (void)vcpu;
    (void)microseconds;
  }
  // Keeps the dirty ring running (and counted) while a dirty limit is set, with or without a
  // migration's dirty log; entries harvested while no dirty log is on are dropped. Called from
  // the dirty limiter's callers' threads.
  virtual Status set_dirty_limit_tracking(bool on) {
    (void)on;
    return Status::ok();
  }
};

// Checks one free-page hint against the guest's RAM: a known block, target-page aligned, not
// empty, inside the block. The error names the range and what is wrong with it.
[[nodiscard]] Status check_free_page_range(const std::vector<RamBlock*>& ram, const Range& r);

// Creates the destination guest with RAM matching `layout` (not running, no state loaded).
using GuestFactory = std::function<Result<std::unique_ptr<Guest>>(const Layout& layout)>;

}  // namespace tern
