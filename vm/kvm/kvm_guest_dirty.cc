// KvmGuest dirty tracking: logging on/off, ring harvests into the pending bitmap (per-vCPU
// counts and soft ring-full events), resets, and collection into the migration bitmap.
#include <chrono>
#include <thread>

#include "vm/kvm/kvm_guest_vcpu.h"

namespace tern {

Status KvmGuest::start_dirty_log() {
  std::lock_guard lk(harvest_mu_);
  if (!logging_)
    if (Status s = vm_->set_dirty_logging(true); !s) return s;
  harvest_locked(true);  // what the dirty limit alone logged is not needed: round 1 sends all
  if (vm_->dirty_mode() == KvmDirtyMode::kBitmap) {
    // The first KVM_GET_DIRTY_LOG reports everything written before; drop that.
    scratch_.clear();
    (void)vm_->get_dirty_log(scratch_);
  }
  pending_.clear_all();
  migration_log_ = true;
  logging_ = true;
  return Status::ok();
}

void KvmGuest::stop_dirty_log() {
  std::lock_guard lk(harvest_mu_);
  migration_log_ = false;
  if (!limit_tracking_) {
    logging_ = false;
    (void)vm_->set_dirty_logging(false);
  }
  harvest_locked(true);
  pending_.clear_all();
}

// The dirty limit needs the rings running even without a migration; pending_ then collects
// pages nobody asks for (cleared when a migration's dirty log starts).
Status KvmGuest::set_dirty_limit_tracking(bool on) {
  std::lock_guard lk(harvest_mu_);
  limit_tracking_ = on;
  if (migration_log_ || logging_ == on) return Status::ok();
  if (Status s = vm_->set_dirty_logging(on); !s) return s;
  harvest_locked(true);
  pending_.clear_all();
  logging_ = on;
  return Status::ok();
}

// Harvests every ring into pending_. KVM re-protects harvested pages only at the reset, and a
// page written again before that logs nothing new on KVM with hardware paging; kvm_pvm, though,
// logs a page again at every write fault, and it takes one after each exit. So the per-vCPU
// count (dirty_pages, and the soft ring-full events it drives) counts a page once per reset
// interval, through seen_, on every host: the first vCPU to log it since the last reset owns
// that entry. The reset comes at collections, at real ring-full exits, once a vCPU has a
// quarter of KVM's ring harvested but not reset (kvm_pvm must never see its ring near full),
// and at least every second (so the rate does not fall to 0 once every page was seen).
void KvmGuest::harvest_locked(bool force_reset) {
  if (vm_->dirty_mode() != KvmDirtyMode::kRing) return;
  const auto now = std::chrono::steady_clock::now();
  bool reset = force_reset || now - last_reset_ >= std::chrono::seconds(1);
  for (auto& v : vcpus_) {
    scratch_.clear();
    const uint64_t n = vm_->harvest(v->index, scratch_);
    v->unreset += n;
    if (v->unreset >= vm_->ring_entries() / 4) reset = true;
    if (!n) continue;
    uint64_t fresh = 0;
    for (uint64_t p : scratch_) {
      if (p >= total_pages_) continue;
      pending_.set(p);
      fresh += !seen_.test_and_set(p);
    }
    v->dirty_pages.fetch_add(fresh, std::memory_order_relaxed);
    v->since_full += fresh;
    if (v->since_full >= spec_.ring_entries) {
      v->since_full = 0;
      v->soft_full.store(true, std::memory_order_release);
    }
  }
  if (reset) {
    bool any = false;
    for (auto& v : vcpus_) any |= v->unreset != 0;
    if (any) (void)vm_->reset_rings();
    for (auto& v : vcpus_) v->unreset = 0;
    seen_.clear_all();
    last_reset_ = now;
  }
}

uint64_t KvmGuest::collect_dirty(MigrationBitmap& bitmap) {
  // Writes still buffered in a CPU's page-modification log reach the ring at the vCPU's next
  // exit: wait (briefly) until every running vCPU has passed a PROGRESS exit after this call.
  if (running_ && vm_->dirty_mode() == KvmDirtyMode::kRing) {
    std::vector<uint64_t> seen;
    for (auto& v : vcpus_) seen.push_back(v->progress_exits.load());
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    for (auto& v : vcpus_)
      while (v->progress_exits.load() == seen[v->index] && pause_req_ == false &&
             std::chrono::steady_clock::now() < deadline)
        std::this_thread::yield();
  }
  std::lock_guard lk(harvest_mu_);
  if (vm_->dirty_mode() == KvmDirtyMode::kRing) {
    harvest_locked(true);
  } else {
    scratch_.clear();
    (void)vm_->get_dirty_log(scratch_);
    for (uint64_t p : scratch_)
      if (p < total_pages_) pending_.set(p);
  }
  uint64_t n = 0;
  for (size_t p = pending_.find_next_set(0); p < pending_.size();
       p = pending_.find_next_set(p + 1)) {
    if (!pending_.test_and_clear(p)) continue;
    bitmap.mark_target(0, p);
    ++n;
  }
  next_report_cmd();  // S5: reports from here on came after this collection
  return n;
}

}  // namespace tern
