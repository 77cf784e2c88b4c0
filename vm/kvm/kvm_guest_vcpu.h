// KvmGuest's per-vCPU record, shared by kvm_guest.cc, kvm_guest_run.cc and kvm_guest_state.cc.
#pragma once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "vm/kvm/abi.h"
#include "vm/kvm/kvm_guest.h"
#include "vm/ring_exit_record.h"

namespace tern {

struct KvmGuest::Vcpu {
  explicit Vcpu(uint32_t i) : index(i) {}
  const uint32_t index;
  std::thread thread;
  std::atomic<bool> done{false};  // vcpu_main returned

  // The guest program's counters as of the last PROGRESS exit (vCPU thread writes, any reads).
  // Never read from guest RAM by other threads: on a postcopy destination a missing page there
  // would block the reader in a userfaultfd fault.
  std::atomic<uint64_t> ops{0}, writes{0}, reads{0}, checks{0}, mismatches{0};
  std::atomic<uint64_t> frees{0}, reuses{0};
  std::atomic<uint64_t> progress_exits{0};
  // Values at load_state (destination): the guest's own checks since arrival are the difference.
  uint64_t base_checks = 0, base_mismatches = 0;

  // Dirty ring (S4). dirty_pages/since_full/unreset: under harvest_mu_; soft_full: harvest sets,
  // vCPU clears; the rest: vCPU thread writes, any thread reads.
  std::atomic<uint64_t> dirty_pages{0};
  uint64_t since_full = 0;
  uint64_t unreset = 0;  // entries harvested since the last KVM_RESET_DIRTY_RINGS
  std::atomic<bool> soft_full{false};
  std::atomic<uint64_t> ring_full_ns{0}, penalty_ns{0};
  std::atomic<uint64_t> penalty_us{0};
  RingExitRecord exits;  // ring-full events and the latest one (DirtyRingCounters)
  uint32_t empty_full_exits = 0;  // consecutive KVM ring-full exits that found nothing (vCPU)
  std::atomic<uint64_t> ring_overruns{0};

  // Pacing (vCPU thread): writes counted from `pace_writes` at `pace_start`.
  std::chrono::steady_clock::time_point pace_start;
  uint64_t pace_writes = 0;
  bool failed = false;  // vCPU thread; read by the control thread under run_mu_

  volatile tern_kvm_area* area = nullptr;  // in guest RAM
};

}  // namespace tern
