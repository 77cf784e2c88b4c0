// The thread guest: a guest to migrate without KVM. N vCPU threads write self-checking pages
// (vm/page_content.h) into one RAM block according to a WorkloadSpec, with a KVM-shaped software
// dirty ring per vCPU (vm/dirty_ring.h) and a reaper thread that harvests full rings.
//
// RAM layout (block 0, "ram"): target pages [0, table_pages) hold the version table, one
// uint32 per target page of the block (the version of that page, 0 = never written); data pages
// follow. The table lives in guest RAM so it migrates with the guest. Each vCPU owns a disjoint
// slice of the working set, so every page has a single writer. One write (a vCPU "operation"):
//   1. fill_page(page p, version v+1)      2. table[p].store(v+1, release)
//   3. if dirty logging: log(p), log(table page holding table[p])
// A write is "complete" when step 3 is done; pause() stops vCPUs only between writes.
//
// Destination: make_thread_guest_factory() creates the RAM for a Layout (untouched: no page of
// guest RAM is read or written until start()); load_state() restores the workload and arms the
// first-touch check: before a vCPU first reads or writes a page after start(), it checks the
// page against the table (both may fault in postcopy) and counts the result (verify_counters()).
//
// Heap (WorkloadSpec free=, reuse=; vm/thread_guest_heap.cc): at the first start() or prefill()
// the heap writes its free share once and frees it: table[p] gets kFreeBit (the content stays,
// dead); vCPUs then touch only pages in use, and with reuse= they reuse freed pages (a full
// write of a new version, free bit cleared) and free pages in use, in their own slices. Freed
// pages are reported for free page hinting (S5); the self check skips pages marked free.
//
// Threads: the Guest methods and run_ops() from one control thread; vcpu_stats(),
// verify_counters(), set_ring_full_penalty(), page_version() and snapshot_versions() from any
// thread. vCPU threads and the reaper are internal.
#pragma once

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/fresh_array.h"
#include "dataplane/guest.h"
#include "vm/self_check.h"
#include "vm/dirty_ring.h"
#include "vm/workload.h"

namespace tern {

struct VcpuStats {
  uint64_t ops = 0;              // completed operations (writes + reads)
  uint64_t writes = 0;
  uint64_t reads = 0;
  uint64_t dirty_pushes = 0;     // entries pushed to the dirty ring
  uint64_t ring_full_exits = 0;
  uint64_t stall_ns = 0;         // time stalled waiting for a harvest at ring-full exits
  uint64_t penalty_ns = 0;       // time slept for the ring-full penalty (dirty limit)
  uint64_t frees = 0;            // heap: pages in use freed
  uint64_t reuses = 0;           // heap: freed pages written again
};

class ThreadGuest : public Guest, public SelfCheck {
 public:
  // Source guest: RAM per spec (zeroed, all versions 0), vCPUs created but not running. RAM is
  // anonymous, or with spec.backing kMemfd a memfd (RamBlock::create_shared) that a VMM process
  // can hand to ternd (vm/thread_vmm_main.cc).
  static Result<std::unique_ptr<ThreadGuest>> create(const WorkloadSpec& spec);
  // Destination guest: RAM matching `layout` (one block), no workload until load_state(); RAM
  // by `backing`, as for create().
  static Result<std::unique_ptr<ThreadGuest>> create_incoming(
      const Layout& layout, RamBacking backing = RamBacking::kAnonymous);
  ~ThreadGuest() override;

  // Guest.
  const std::vector<RamBlock*>& ram() const override { return ram_view_; }
  RamBlock& block() const { return *block_; }
  Status start() override;
  void pause() override;
  bool running() const override { return running_; }
  Status start_dirty_log() override;
  void stop_dirty_log() override;
  uint64_t collect_dirty(MigrationBitmap& bitmap) override;
  // Free page hinting (S5): the heap's freed pages, see take_free_pages in dataplane/guest.h.
  bool reports_free_pages() const override { return true; }
  Status start_free_page_reporting() override;
  uint64_t take_free_pages(std::vector<Range>& out) override;
  void stop_free_page_reporting() override;
  // Requires the guest paused (or never started); returns an empty vector otherwise.
  std::vector<uint8_t> save_state() override;
  Status load_state(const std::vector<uint8_t>& state) override;
  std::string describe() const override;
  // SelfCheck.
  VerifyReport verify() override;
  VerifyReport verify_counters() const override;

  // Runs the vCPUs until each has completed `ops_per_vcpu` operations in total (since creation,
  // carried over by save/load), then pauses. Deterministic: the same spec and seed give the same
  // memory whatever the timing. Requires a workload (create() or load_state()).
  Status run_ops(uint64_t ops_per_vcpu);
  // Writes version 1 of every working-set page never written yet, without running the vCPUs
  // (benchmarks: a guest whose RAM holds data, whatever its rate). Guest paused; control thread.
  Status prefill();

  // Dirty limit (S4): a vCPU sleeps its penalty at each ring-full exit. 0 = none.
  uint32_t dirty_limit_vcpus() const override { return vcpus(); }
  Status set_dirty_limit_tracking(bool on) override;
  DirtyRingCounters dirty_ring_counters(uint32_t vcpu) const override;
  void set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) override;
  uint32_t vcpus() const { return static_cast<uint32_t>(vcpus_.size()); }
  VcpuStats vcpu_stats(uint32_t vcpu) const;
  bool has_workload() const { return has_workload_; }
  const WorkloadSpec& spec() const { return spec_; }

  // Geometry, in target pages of block 0.
  uint64_t target_pages() const { return target_pages_; }
  uint64_t table_pages() const { return table_pages_; }
  uint64_t working_set_pages() const { return wss_pages_; }
  // Version of page `page` as recorded in the in-RAM table (atomic load; any thread); a page
  // the heap freed has kFreeBit set on top of the version it had.
  static constexpr uint32_t kFreeBit = 1u << 31;
  static constexpr uint32_t kVersionMask = kFreeBit - 1;
  uint32_t page_version(uint64_t page) const;
  // Heap: whether page `page` is free now; how many pages are (any thread).
  bool page_free(uint64_t page) const;
  uint64_t free_pages() const;
  // Copies the whole version table with atomic loads (any thread, vCPUs may run).
  void snapshot_versions(std::vector<uint32_t>& out) const;

 private:
  struct Vcpu;
  explicit ThreadGuest(std::unique_ptr<RamBlock> block);
  Status setup_workload(const WorkloadSpec& spec);  // creates vCPUs; RAM untouched
  void spawn_threads();
  void join_threads();

  // vCPU side (vm/thread_guest_vcpu.cc).
  void vcpu_main(Vcpu& v);
  bool wait_runnable(Vcpu& v);  // parks while paused / op budget reached; false = exit
  void sleep_until(std::chrono::steady_clock::time_point deadline);
  void do_op(Vcpu& v);
  uint64_t next_page(Vcpu& v);
  void log_page(Vcpu& v, uint64_t page);
  void ring_full_exit(Vcpu& v);
  void check_first_touch(uint64_t page);
  void reaper_main();

  // Heap (vm/thread_guest_heap.cc).
  bool heap_on() const { return spec_.free_pct != 0 || spec_.reuse_pct != 0; }
  void heap_init();  // control thread, vCPUs parked: write and free the free share
  // The next page at or after `from` in v's slice (wrapping) that is free (want_free) or in
  // use; UINT64_MAX if none.
  uint64_t find_in_slice(const Vcpu& v, uint64_t from, bool want_free) const;
  void heap_churn(Vcpu& v, uint64_t page);  // vCPU thread
  void write_page(Vcpu& v, uint64_t page, uint32_t entry);  // full write, next version
  void free_page(Vcpu& v, uint64_t page, uint32_t entry);
  void mark_free(uint64_t page, bool free);

  uint32_t* table() const { return reinterpret_cast<uint32_t*>(block_->base()); }
  uint8_t* page_ptr(uint64_t page) const { return block_->base() + page * kSmallPage; }

  // Written at creation / load_state (control thread, vCPU threads not running).
  std::unique_ptr<RamBlock> block_;
  std::vector<RamBlock*> ram_view_;
  uint64_t target_pages_ = 0;
  uint64_t table_pages_ = 0;
  uint64_t wss_pages_ = 0;
  WorkloadSpec spec_;
  bool has_workload_ = false;
  bool check_touch_ = false;  // destination: verify pages on first touch
  std::vector<std::unique_ptr<Vcpu>> vcpus_;

  // Control thread only.
  bool running_ = false;
  bool threads_started_ = false;

  // Run control: pause_req_/exit_ written under run_mu_ (pause_req_ also read lock-free by
  // vCPUs between writes); parked_ under run_mu_.
  std::mutex run_mu_;
  std::condition_variable run_cv_;     // vCPUs wait: resume, exit, burst sleep
  std::condition_variable parked_cv_;  // control waits: all parked
  std::atomic<bool> pause_req_{true};
  bool exit_ = false;
  uint32_t parked_ = 0;
  std::atomic<uint64_t> stop_at_{UINT64_MAX};  // op budget per vCPU (run_ops)

  // Dirty tracking. logging_ (vCPUs push to their rings) = migration_log_ || limit_tracking_;
  // written under harvest_mu_, read by vCPUs. logged_[p]: one flag per target page, set by the
  // vCPU that pushes p (exchange), cleared after p's entry is harvested (by collect_dirty after
  // marking p, or by the reaper, like KVM_RESET_DIRTY_RINGS re-arms a harvested page).
  void set_logging(bool migration, bool limit);  // harvest_mu_ held
  std::atomic<bool> logging_{false};
  bool migration_log_ = false;   // harvest_mu_: harvested entries are kept for collect_dirty
  bool limit_tracking_ = false;  // harvest_mu_: the dirty limit wants the rings running
  bool flags_maybe_set_ = false;  // harvest_mu_: logging was on since logged_ was last cleared
  FreshAtomicArray<uint8_t> logged_;  // fresh memory: a destination touches only what it logs
  std::mutex harvest_mu_;          // serializes ring harvests; guards pending_ and the bools above
  std::vector<uint64_t> pending_;  // bitmap of pages the reaper harvested, for collect_dirty
  std::vector<DirtyGfn> batch_;    // collect_dirty's scratch (control thread)

  // Reaper: woken through reap_req_ (atomic wait/notify) by vCPUs at ring-full exits.
  std::atomic<uint32_t> reap_req_{0};
  std::atomic<bool> reaper_exit_{false};
  std::thread reaper_;

  // Heap state. free_: one bit per target page, set while the page is free (a cache of the
  // table's kFreeBit, carried in the saved state); written by the page's vCPU, or by the
  // control thread with vCPUs parked. reported_: pages freed and neither reused nor taken
  // since (take_free_pages); a vCPU clears a page's bit before it writes the page again.
  // Both in fresh memory (zero: no page free or reported), touched only where pages are freed.
  FreshAtomicArray<uint64_t> free_;
  FreshAtomicArray<uint64_t> reported_;
  uint64_t words_ = 0;
  bool heap_ready_ = false;              // control thread: heap_init done (or state loaded)
  std::atomic<bool> reporting_{false};   // take_free_pages reports (migration control thread)

  // Destination first-touch check (any vCPU; counters readable from any thread).
  AtomicBitmap touched_;
  std::atomic<uint64_t> touched_checked_{0};
  std::atomic<uint64_t> touched_mismatches_{0};
  LatencyHistogram touch_latency_;  // first-touch wait: table entry + page read (may fault)
  mutable std::mutex touch_mu_;  // guards touch_first_mismatch_
  std::string touch_first_mismatch_;
};

// Destination factory for IncomingMigration: ThreadGuest::create_incoming, RAM by `backing`
// (memfd: postcopy pages are installed from the page cache, without a second copy).
GuestFactory make_thread_guest_factory(RamBacking backing = RamBacking::kAnonymous);

}  // namespace tern
