// Thread guest: creation, run control, dirty tracking and the reaper. The vCPU loop is in
// thread_guest_vcpu.cc, state save/load and verification in thread_guest_state.cc.
#include "vm/thread_guest.h"

#include <algorithm>

#include "vm/thread_guest_vcpu.h"

namespace tern {
namespace {

uint64_t mix_seed(uint64_t seed, uint64_t vcpu) {
  uint64_t x = seed + 0x9e3779b97f4a7c15 * (vcpu + 1);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  x ^= x >> 31;
  return x ? x : 1;
}

}  // namespace

ThreadGuest::ThreadGuest(std::unique_ptr<RamBlock> block)
    : block_(std::move(block)),
      target_pages_(block_->target_pages()),
      table_pages_((block_->target_pages() + 1023) / 1024),
      logged_(block_->target_pages()),
      free_((block_->target_pages() + 63) / 64),
      reported_((block_->target_pages() + 63) / 64),
      touched_(block_->target_pages()) {
  ram_view_.push_back(block_.get());
  pending_.assign((target_pages_ + 63) / 64, 0);
  words_ = (target_pages_ + 63) / 64;
}

Result<std::unique_ptr<ThreadGuest>> ThreadGuest::create(const WorkloadSpec& spec) {
  if (Status s = spec.validate(); !s) return s;
  auto block = RamBlock::create("ram", spec.ram_bytes, spec.page_size, spec.backing);
  if (!block) return block.status();
  std::unique_ptr<ThreadGuest> g(new ThreadGuest(std::move(block).value()));
  if (Status s = g->setup_workload(spec); !s) return s;
  for (auto& v : g->vcpus_) v->rng = mix_seed(spec.seed, v->index);
  return g;
}

Result<std::unique_ptr<ThreadGuest>> ThreadGuest::create_incoming(const Layout& layout,
                                                                  RamBacking backing) {
  if (layout.blocks.size() != 1)
    return Status(Code::kInvalidArgument, "thread guest: layout has " +
                                              std::to_string(layout.blocks.size()) +
                                              " RAM blocks, a thread guest has exactly 1");
  const BlockInfo& b = layout.blocks[0];
  if (b.size / kSmallPage < 2)
    return Status(Code::kInvalidArgument, "thread guest: block '" + b.name + "' is too small");
  auto block = RamBlock::create(b.name, b.size, b.host_page_size, backing);
  if (!block) return block.status();
  return std::unique_ptr<ThreadGuest>(new ThreadGuest(std::move(block).value()));
}

Status ThreadGuest::setup_workload(const WorkloadSpec& spec) {
  if (spec.ram_bytes != block_->size() || spec.page_size != block_->host_page_size())
    return Status(Code::kInvalidArgument,
                  "thread guest: workload wants " + format_bytes(spec.ram_bytes) + " of " +
                      format_bytes(spec.page_size) + " pages but the RAM block is " +
                      format_bytes(block_->size()) + " of " +
                      format_bytes(block_->host_page_size()) + " pages");
  uint64_t data_pages = target_pages_ - table_pages_;
  uint64_t wss = spec.wss_bytes ? spec.wss_bytes / kSmallPage
                                : static_cast<uint64_t>(static_cast<double>(target_pages_) *
                                                        spec.wss_fraction);
  if (data_pages < spec.vcpus)
    return Status(Code::kInvalidArgument, "thread guest: fewer data pages than vCPUs");
  wss = std::clamp<uint64_t>(wss, spec.vcpus, data_pages);
  spec_ = spec;
  wss_pages_ = wss;
  vcpus_.clear();
  uint64_t next = table_pages_;
  for (uint32_t i = 0; i < spec.vcpus; ++i) {
    auto v = std::make_unique<Vcpu>(i, spec.ring_entries);
    v->first_page = next;
    v->pages = wss / spec.vcpus + (i < wss % spec.vcpus ? 1 : 0);
    v->hot_pages = std::max<uint64_t>(1, v->pages * spec.hot_set_pct / 100);
    v->reader = i >= spec.vcpus - spec.readers;
    next += v->pages;
    vcpus_.push_back(std::move(v));
  }
  has_workload_ = true;
  return Status::ok();
}

ThreadGuest::~ThreadGuest() { join_threads(); }

void ThreadGuest::spawn_threads() {
  threads_started_ = true;
  reaper_ = std::thread([this] { reaper_main(); });
  for (auto& v : vcpus_) v->thread = std::thread([this, p = v.get()] { vcpu_main(*p); });
}

void ThreadGuest::join_threads() {
  if (!threads_started_) return;
  {
    std::lock_guard lk(run_mu_);
    exit_ = true;
    pause_req_.store(true, std::memory_order_release);
  }
  run_cv_.notify_all();
  // A vCPU stalled at a ring-full exit is released by the reaper, which is still running.
  for (auto& v : vcpus_) v->thread.join();
  reaper_exit_.store(true, std::memory_order_release);
  reap_req_.fetch_add(1, std::memory_order_release);
  reap_req_.notify_all();
  reaper_.join();
  threads_started_ = false;
}

Status ThreadGuest::start() {
  if (!has_workload_)
    return Status(Code::kInvalidArgument,
                  "thread guest: no workload to run (destination: load_state() first)");
  {
    std::lock_guard lk(run_mu_);
    pause_req_.store(false, std::memory_order_release);
  }
  heap_init();  // the first start of a source guest with a heap: vCPUs not running yet
  if (!threads_started_) spawn_threads();
  run_cv_.notify_all();
  running_ = true;
  return Status::ok();
}

void ThreadGuest::pause() {
  running_ = false;
  if (!threads_started_) return;
  std::unique_lock lk(run_mu_);
  pause_req_.store(true, std::memory_order_release);
  run_cv_.notify_all();  // cuts burst and penalty sleeps short
  parked_cv_.wait(lk, [&] { return parked_ == vcpus_.size(); });
}

Status ThreadGuest::run_ops(uint64_t ops_per_vcpu) {
  stop_at_.store(ops_per_vcpu, std::memory_order_release);
  if (Status s = start(); !s) return s;
  {
    std::unique_lock lk(run_mu_);
    parked_cv_.wait(lk, [&] {
      if (parked_ != vcpus_.size()) return false;
      for (auto& v : vcpus_)
        if (v->ops.load(std::memory_order_relaxed) < ops_per_vcpu) return false;
      return true;
    });
  }
  pause();
  stop_at_.store(UINT64_MAX, std::memory_order_release);
  return Status::ok();
}

// Entries in the rings and pending_ are dropped and every page is re-armed: callers change
// modes only where nothing logged so far is needed (a migration's first round sends every page).
void ThreadGuest::set_logging(bool migration, bool limit) {
  const bool on = migration || limit;
  if (!on) logging_.store(false, std::memory_order_seq_cst);
  std::vector<DirtyGfn> dropped;
  for (auto& v : vcpus_) v->ring.harvest(dropped);  // also releases stalled vCPUs
  std::fill(pending_.begin(), pending_.end(), 0);
  // Flags cleared with the rings empty (a vCPU racing with this can only leave an extra entry
  // behind, never a set flag without an entry); only when logging goes on (nothing reads them
  // while it is off) and some flag may be set: a guest that never logged has them all zero in
  // fresh pages, and a clear would fault them all in (a destination's, for nothing).
  if (on && flags_maybe_set_)
    for (uint64_t i = 0; i < target_pages_; ++i) logged_[i].store(0, std::memory_order_release);
  if (on) {
    flags_maybe_set_ = true;
    logging_.store(true, std::memory_order_seq_cst);
  }
  migration_log_ = migration;
  limit_tracking_ = limit;
}

Status ThreadGuest::start_dirty_log() {
  std::lock_guard lk(harvest_mu_);
  set_logging(true, limit_tracking_);
  return Status::ok();
}

void ThreadGuest::stop_dirty_log() {
  std::lock_guard lk(harvest_mu_);
  set_logging(false, limit_tracking_);
}

Status ThreadGuest::set_dirty_limit_tracking(bool on) {
  std::lock_guard lk(harvest_mu_);
  if (migration_log_)
    limit_tracking_ = on;  // the rings run for the migration anyway; keep what it logged
  else
    set_logging(false, on);
  return Status::ok();
}

// Why a write that completed before collect_dirty began is always reported. The vCPU's last
// step of a write W to page p is log_page(p): flag = logged_[p].exchange(1, acq_rel), and if
// flag was 0, push (p) to its ring (entry store, then head.store(release)); on a full ring it
// stalls until the reaper harvests the ring (under harvest_mu_), marks p in pending_ and then
// clears p's flag.
//  (a) flag was 0: W's entry is in the ring (we read head with acquire after W completed, so we
//      see it) or in pending_ (we take it under harvest_mu_). We mark p.
//  (b) flag was 1: an entry E for p is pending from an earlier write. Only a harvest that has
//      taken E clears the flag, and it marks p (in the bitmap or in pending_) before it clears.
//      If E is still in a ring or pending_, we mark it now. If an earlier collect C took E,
//      W's exchange read the flag before C's clear; C marked p before returning, and since C's
//      clear is an acq_rel RMW ordered after W's exchange, W happens-before C's return, so the
//      engine, which sends only after C returned, sends W's content. If the reaper took E, it
//      marked p in pending_ under harvest_mu_ before its clear, which W happens-before: this
//      collect, taking harvest_mu_ after it, finds p in pending_.
// Each harvest marks before it clears, and flags are only cleared for harvested entries, so a
// set flag always means "p is in the bitmap, in pending_, or an entry for p is in a ring".
uint64_t ThreadGuest::collect_dirty(MigrationBitmap& bitmap) {
  batch_.clear();
  uint64_t n = 0;
  {
    std::lock_guard lk(harvest_mu_);
    for (auto& v : vcpus_) v->ring.harvest(batch_);
    for (const DirtyGfn& e : batch_) pending_[e.offset / 64] |= uint64_t{1} << (e.offset % 64);
    for (size_t w = 0; w < pending_.size(); ++w) {
      for (uint64_t bits = pending_[w]; bits != 0; bits &= bits - 1) {
        bitmap.mark_target(0, w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits)));
        ++n;
      }
      pending_[w] = 0;
    }
  }
  // Clear after marking (see above): a write that finds the flag still set is covered by
  // this collect's mark; one that finds it clear pushes a new entry for the next collect.
  for (const DirtyGfn& e : batch_) logged_[e.offset].exchange(0, std::memory_order_acq_rel);
  return n;
}

void ThreadGuest::reaper_main() {
  std::vector<DirtyGfn> scratch;
  while (!reaper_exit_.load(std::memory_order_acquire)) {
    uint32_t seen = reap_req_.load(std::memory_order_acquire);
    {
      std::lock_guard lk(harvest_mu_);
      scratch.clear();
      for (auto& v : vcpus_)
        if (v->ring.full()) v->ring.harvest(scratch);
      // Kept for collect_dirty while a migration logs; dropped when only the dirty limit runs
      // the rings. Either way the page is re-armed, so its next write is logged (and counted).
      if (migration_log_)
        for (const DirtyGfn& e : scratch) pending_[e.offset / 64] |= uint64_t{1} << (e.offset % 64);
      for (const DirtyGfn& e : scratch) logged_[e.offset].exchange(0, std::memory_order_acq_rel);
    }
    if (reaper_exit_.load(std::memory_order_acquire)) break;
    reap_req_.wait(seen, std::memory_order_acquire);
  }
}

void ThreadGuest::set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) {
  if (vcpu < vcpus_.size()) vcpus_[vcpu]->penalty_us.store(microseconds, std::memory_order_relaxed);
}

VcpuStats ThreadGuest::vcpu_stats(uint32_t vcpu) const {
  VcpuStats s;
  if (vcpu >= vcpus_.size()) return s;
  const Vcpu& v = *vcpus_[vcpu];
  auto r = [](const std::atomic<uint64_t>& c) { return c.load(std::memory_order_relaxed); };
  s.ops = r(v.ops);
  s.writes = r(v.writes);
  s.reads = r(v.reads);
  s.dirty_pushes = r(v.dirty_pushes);
  s.ring_full_exits = v.exits.exits();
  s.stall_ns = r(v.stall_ns);
  s.penalty_ns = r(v.penalty_ns);
  s.frees = r(v.frees);
  s.reuses = r(v.reuses);
  return s;
}

DirtyRingCounters ThreadGuest::dirty_ring_counters(uint32_t vcpu) const {
  if (vcpu >= vcpus_.size()) return {};
  const Vcpu& v = *vcpus_[vcpu];
  const RingExitRecord::Snapshot e = v.exits.read();
  const VcpuStats s = vcpu_stats(vcpu);
  return {.dirty_pages = std::max(s.dirty_pushes, e.at_pages),
          .ring_full_exits = e.exits,
          .ring_full_ns = s.stall_ns + s.penalty_ns,
          .penalty_ns = s.penalty_ns,
          .ops = s.ops,
          .last_exit_ns = e.at_ns,
          .pages_at_last_exit = e.at_pages};
}

uint32_t ThreadGuest::page_version(uint64_t page) const {
  return std::atomic_ref<uint32_t>(table()[page]).load(std::memory_order_acquire);
}

void ThreadGuest::snapshot_versions(std::vector<uint32_t>& out) const {
  out.resize(target_pages_);
  for (uint64_t p = 0; p < target_pages_; ++p) out[p] = page_version(p);
}

std::string ThreadGuest::describe() const {
  if (has_workload_) return spec_.describe();
  return "threads: awaiting state, " + format_bytes(block_->size()) + ", " +
         (block_->hugetlb() ? "2M" : "4K") + " pages";
}

GuestFactory make_thread_guest_factory(RamBacking backing) {
  return [backing](const Layout& layout) -> Result<std::unique_ptr<Guest>> {
    auto g = ThreadGuest::create_incoming(layout, backing);
    if (!g) return g.status();
    return std::unique_ptr<Guest>(std::move(g).value());
  };
}

}  // namespace tern
