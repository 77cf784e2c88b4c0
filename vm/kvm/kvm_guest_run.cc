// KvmGuest vCPU threads (KVM_RUN loop and its exits) and the ring reaper.
#include <sys/ioctl.h>

#include <cerrno>
#include <cstring>

#include "vm/kvm/kvm_guest_vcpu.h"

namespace tern {
namespace {

uint64_t elapsed_ns(std::chrono::steady_clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0)
          .count());
}

std::string hex(uint64_t v) {
  char b[24];
  std::snprintf(b, sizeof b, "%#llx", static_cast<unsigned long long>(v));
  return b;
}

}  // namespace

void KvmGuest::vcpu_main(Vcpu& v) {
  run_vcpu(v);
  v.done.store(true, std::memory_order_release);
}

void KvmGuest::run_vcpu(Vcpu& v) {
  if (!park(v)) return;
  for (;;) {
    const int rc = vm_->run(v.index);
    if (rc == -EINTR || rc == -EAGAIN) {
      if (quit_.load(std::memory_order_acquire)) break;
      continue;
    }
    if (rc < 0) {
      fail(v, std::string("KVM_RUN failed: ") + std::strerror(-rc));
      if (!park(v)) return;
      continue;
    }
    kvm_run* run = vm_->run_area(v.index);
    switch (run->exit_reason) {
      case KVM_EXIT_IO:
        if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == TERN_KVM_PORT_PROGRESS) {
          if (!on_progress(v)) return;
        } else if (run->io.direction == KVM_EXIT_IO_OUT && run->io.port == TERN_KVM_PORT_MISMATCH) {
          on_mismatch(v);
        } else if (run->io.direction == KVM_EXIT_IO_OUT &&
                   run->io.port == TERN_KVM_PORT_FREE_REPORT) {
          take_reports(v);
        } else if (run->io.port == TERN_KVM_PORT_PANIC) {
          fail(v, "the guest program rejected its config page");
          if (!park(v)) return;
        } else {
          fail(v, "unexpected port I/O at port " + hex(run->io.port));
          if (!park(v)) return;
        }
        break;
      case KVM_EXIT_DIRTY_RING_FULL:
        ring_full(v, true);
        if (v.failed && !park(v)) return;
        break;
      case KVM_EXIT_INTR:
        break;
      default: {
        kvm_regs r{};
        (void)::ioctl(vm_->vcpu_fd(v.index), KVM_GET_REGS, &r);
        fail(v, "unexpected exit reason " + std::to_string(run->exit_reason) + " at rip " +
                    hex(r.rip) +
                    (run->exit_reason == KVM_EXIT_INTERNAL_ERROR
                         ? " (internal error " + std::to_string(run->internal.suberror) + ")"
                         : std::string()));
        if (!park(v)) return;
      }
    }
  }
}

// Parks until resumed (or exit). The vCPU stands after a completed OUT: KVM finishes the
// instruction only at the next KVM_RUN, so that entry is made first with immediate_exit, as
// the KVM API asks before reading the state for migration.
bool KvmGuest::park(Vcpu& v) {
  kvm_run* run = vm_->run_area(v.index);
  run->immediate_exit = 1;
  (void)vm_->run(v.index);
  run->immediate_exit = 0;
  std::unique_lock lk(run_mu_);
  ++parked_;
  parked_cv_.notify_all();
  run_cv_.wait(
      lk, [&] { return exit_ || (!v.failed && !pause_req_ && v.ops.load() < stop_at_.load()); });
  --parked_;
  if (exit_) return false;
  v.pace_start = std::chrono::steady_clock::now();
  v.pace_writes = v.writes.load();
  return true;
}

bool KvmGuest::on_progress(Vcpu& v) {
  v.ops.store(v.area->ops, std::memory_order_relaxed);
  v.writes.store(v.area->writes, std::memory_order_relaxed);
  v.reads.store(v.area->reads, std::memory_order_relaxed);
  v.checks.store(v.area->checks, std::memory_order_relaxed);
  v.mismatches.store(v.area->mismatches, std::memory_order_relaxed);
  v.frees.store(v.area->frees, std::memory_order_relaxed);
  v.reuses.store(v.area->reuses, std::memory_order_relaxed);
  v.progress_exits.fetch_add(1, std::memory_order_release);
  take_reports(v);  // no doorbell needed for what a batch reported (virtio's notification suppression)
  if (v.soft_full.exchange(false, std::memory_order_acq_rel)) ring_full(v, false);
  if (spec_.rate) pace(v);
  if (pause_req_.load(std::memory_order_acquire) || v.ops.load() >= stop_at_.load()) return park(v);
  return true;
}

void KvmGuest::on_mismatch(Vcpu& v) {
  std::lock_guard lk(run_mu_);
  if (!first_mismatch_.empty()) return;
  first_mismatch_ = "vCPU " + std::to_string(v.index) + ": page " +
                    std::to_string(v.area->bad_page) + " holds " + hex(v.area->bad_found) +
                    ", its table says " + hex(v.area->bad_expected);
}

// A ring-full event: KVM's own exit, or this vCPU logged `ring=` entries since the last one.
// Harvest (a real exit needs its ring drained before KVM_RUN may go on), then take the
// dirty-limit penalty (S4: ACCEPT PENALTY).
void KvmGuest::ring_full(Vcpu& v, bool real_exit) {
  const auto t0 = std::chrono::steady_clock::now();
  if (real_exit) {
    std::lock_guard lk(harvest_mu_);
    scratch_.clear();
    const bool empty = vm_->harvest(v.index, scratch_) == 0;
    uint64_t fresh = 0;
    for (uint64_t p : scratch_) {
      if (p >= total_pages_) continue;
      pending_.set(p);
      fresh += !seen_.test_and_set(p);
    }
    v.dirty_pages.fetch_add(fresh, std::memory_order_relaxed);
    v.since_full += fresh;
    // KVM says full but nothing is there, twice in a row: the ring was overrun and KVM waits
    // on entries that were overwritten. Skip them, and since writes went unrecorded, report
    // every page dirty at the next collection.
    if (!empty) {
      v.empty_full_exits = 0;
    } else if (++v.empty_full_exits >= 2) {
      vm_->unjam(v.index);
      pending_.set_all();
      v.ring_overruns.fetch_add(1, std::memory_order_relaxed);
    }
    harvest_locked(true);
  }
  // Not recovered after many tries: KVM keeps the vCPU out. Better a clear error than a hang.
  if (real_exit && v.empty_full_exits > 10000) {
    fail(v,
         "KVM's dirty ring is overrun and stays full (an emulating KVM such as kvm_pvm "
         "writes past a full ring; give it a larger ring or a faster reaper)");
    v.empty_full_exits = 0;
  }
  v.exits.record(t0, v.dirty_pages.load(std::memory_order_relaxed));
  if (const uint64_t us = v.penalty_us.load(std::memory_order_relaxed)) {
    const auto p0 = std::chrono::steady_clock::now();
    std::unique_lock lk(run_mu_);
    run_cv_.wait_until(lk, p0 + std::chrono::microseconds(us),
                       [&] { return exit_ || pause_req_.load(); });
    lk.unlock();
    v.penalty_ns.fetch_add(elapsed_ns(p0), std::memory_order_relaxed);
  }
  v.ring_full_ns.fetch_add(elapsed_ns(t0), std::memory_order_relaxed);
}

// Holds the vCPU to spec_.rate page writes per second, counted from its last resume.
void KvmGuest::pace(Vcpu& v) {
  const uint64_t done = v.writes.load() - v.pace_writes;
  const auto due = v.pace_start + std::chrono::nanoseconds(done * 1'000'000'000ull / spec_.rate);
  if (std::chrono::steady_clock::now() >= due) return;
  std::unique_lock lk(run_mu_);
  run_cv_.wait_until(lk, due, [&] { return exit_ || pause_req_.load(); });
}

void KvmGuest::fail(Vcpu& v, const std::string& why) {
  std::lock_guard lk(run_mu_);
  v.failed = true;
  if (error_.empty()) error_ = "vCPU " + std::to_string(v.index) + ": " + why;
  parked_cv_.notify_all();
}

// Drains the rings every reap_ms_ while logging, so that KVM's (large) ring never nears full:
// kvm_pvm writes past the soft limit of a full ring and loses entries (docs/kvm.md).
void KvmGuest::reaper_main() {
  while (!reaper_exit_.load(std::memory_order_acquire)) {
    if (!logging_.load(std::memory_order_acquire)) {
      // Idle (no logging, e.g. on a destination): look again in 10 ms, not every millisecond.
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
      continue;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(reap_ms_));
    std::lock_guard lk(harvest_mu_);
    harvest_locked(false);
  }
}

}  // namespace tern
