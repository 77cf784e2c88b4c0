// The KVM guest: a real VM (vm/kvm/kvm_vm.h) running the embedded guest program
// (vm/kvm/guest/guest.c) on one vCPU thread each, with the same Guest interface as the thread
// guest. The workload comes from the same spec string ("vcpus=2,ram=256M,wss=25%,rate=5000,...",
// vm/workload.h); guest RAM is one RamBlock named "kvm-ram" laid out as in vm/kvm/abi.h.
//
// Run control: the guest program exits to the VMM through port I/O every few operations
// (PROGRESS). There, and only there, the vCPU thread paces the vCPU to the spec's rate, takes
// its dirty-limit penalty when its ring has filled, and parks when a pause is requested; so a
// paused guest always stands between two operations, with memory and version table agreeing.
//
// Dirty tracking: the KVM dirty ring (ACQ_REL if the host has it), harvested every millisecond
// by a reaper thread into a per-page pending bitmap, or KVM_GET_DIRTY_LOG where no ring exists.
// A vCPU "fills its ring" each time it has logged `ring=` entries (spec, default 4096) since its
// last ring-full event, whether or not KVM's (larger) ring really filled: a real
// KVM_EXIT_DIRTY_RING_FULL and this soft one are handled alike (harvest, then sleep the penalty
// set by set_ring_full_penalty). See docs/kvm.md for why (kvm_pvm overruns a full ring).
//
// Free page reporting (S5, kvm_guest_report.cc): the guest program's heap reports the units it
// frees through a per-vCPU ring in guest RAM and a doorbell port, as virtio-balloon's free page
// hinting does for Linux (protocol in vm/kvm/abi.h); the vCPU threads take the entries at their
// exits, take_free_pages hands them to the engine.
//
// Threads: Guest methods and run_ops() from one control thread; dirty_ring_counters(),
// set_ring_full_penalty(), verify_counters(), vcpu_counters() and error() from any thread.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/guest.h"
#include "vm/kvm/abi.h"
#include "vm/kvm/kvm_vm.h"
#include "vm/self_check.h"
#include "vm/workload.h"

namespace tern {

inline constexpr const char* kKvmBlockName = "kvm-ram";

// What the guest program reports about one vCPU (cumulative since boot, carried by migration).
struct KvmVcpuCounters {
  uint64_t ops = 0, writes = 0, reads = 0, checks = 0, mismatches = 0;
  uint64_t progress_exits = 0;  // PROGRESS exits seen by this VMM (not migrated)
  uint64_t ring_overruns = 0;   // KVM's ring was overrun (entries lost; all memory re-sent)
  uint64_t frees = 0, reuses = 0;  // heap (free=, reuse=): pages freed, freed pages reused
};

class KvmGuest : public Guest, public SelfCheck {
 public:
  struct Options {
    bool want_ring = true;  // false: KVM_GET_DIRTY_LOG even where the ring exists
    uint32_t batch = 16;    // guest operations between two PROGRESS exits
    // KVM's ring per vCPU (entries; the host may cap it) and the reaper's period (0 = no
    // reaper: rings drain only at collections and ring-full exits). Tests shrink these.
    uint32_t kernel_ring_entries = 65536;
    uint32_t reap_ms = 1;
    // Per-vCPU share of reads (0..100) overriding the spec's read= for the first vCPUs, e.g.
    // {0, 100}: vCPU 0 only writes, vCPU 1 only reads (dirty-limit tests). Lives in the config
    // page, so it migrates with the guest.
    std::vector<uint32_t> vcpu_read_pct;
    // Guest RAM: anonymous (in ternd), or a memfd (hugetlb for 2M) that a VMM process of its own
    // hands to ternd (tern-kvm-vmm, vm/kvm/kvm_vmm_main.cc).
    RamBacking backing = RamBacking::kAnonymous;
  };
  // Source guest: RAM, page tables, config and program written; vCPUs ready, not running.
  static Result<std::unique_ptr<KvmGuest>> create(const WorkloadSpec& spec, Options opt);
  static Result<std::unique_ptr<KvmGuest>> create(const WorkloadSpec& spec) {
    return create(spec, Options{});
  }
  // Destination guest: RAM for `layout` (untouched, made as `backing` says), VM and vCPUs; the
  // rest comes with load_state() and the migrated RAM.
  static Result<std::unique_ptr<KvmGuest>> create_incoming(
      const Layout& layout, RamBacking backing = RamBacking::kAnonymous);
  ~KvmGuest() override;

  // Guest.
  const std::vector<RamBlock*>& ram() const override { return ram_view_; }
  Status start() override;
  void pause() override;
  bool running() const override { return running_; }
  Status start_dirty_log() override;
  void stop_dirty_log() override;
  uint64_t collect_dirty(MigrationBitmap& bitmap) override;
  std::vector<uint8_t> save_state() override;
  Status load_state(const std::vector<uint8_t>& state) override;
  std::string describe() const override;
  // SelfCheck.
  VerifyReport verify() override;
  VerifyReport verify_counters() const override;
  uint32_t dirty_limit_vcpus() const override;
  DirtyRingCounters dirty_ring_counters(uint32_t vcpu) const override;
  void set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) override;
  Status set_dirty_limit_tracking(bool on) override;
  // Free page reporting (S5): see the protocol in vm/kvm/abi.h.
  bool reports_free_pages() const override { return true; }
  Status start_free_page_reporting() override;
  uint64_t take_free_pages(std::vector<Range>& out) override;
  void stop_free_page_reporting() override;

  // Runs until every vCPU has done at least `ops_per_vcpu` operations since boot, then pauses.
  Status run_ops(uint64_t ops_per_vcpu);
  uint32_t vcpus() const { return static_cast<uint32_t>(vcpus_.size()); }
  KvmVcpuCounters vcpu_counters(uint32_t vcpu) const;
  // First failure of a vCPU (unexpected exit, KVM error), "" if none. A failed vCPU stays parked.
  std::string error() const;
  const KvmVm& vm() const { return *vm_; }
  const WorkloadSpec& spec() const { return spec_; }
  uint64_t data_first_page() const { return data_first_; }
  uint64_t working_set_pages() const { return wss_pages_; }
  // The version the in-RAM table records for page `page` (guest paused, or any page's owner).
  uint32_t page_version(uint64_t page) const;

 private:
  struct Vcpu;
  explicit KvmGuest(std::unique_ptr<RamBlock> block);
  Status set_geometry(const WorkloadSpec& spec);
  Status write_boot_image(const Options& opt);
  void spawn_threads();

  // vCPU side (kvm_guest_run.cc).
  void vcpu_main(Vcpu& v);
  void run_vcpu(Vcpu& v);
  bool park(Vcpu& v);  // false = exit the thread
  bool on_progress(Vcpu& v);
  void on_mismatch(Vcpu& v);
  void ring_full(Vcpu& v, bool real_exit);
  void pace(Vcpu& v);
  void fail(Vcpu& v, const std::string& why);
  void reaper_main();
  void harvest_locked(bool reset);
  // Free page reporting (kvm_guest_report.cc).
  void take_reports(Vcpu& v);  // vCPU thread, at its exits: the ring's entries, acknowledged
  void next_report_cmd();      // control thread, after each collection while reporting
  volatile tern_kvm_report_ctl* report_ctl() const;

  uint8_t* gpa(uint64_t addr) const { return block_->base() + addr; }

  // Written at creation / load_state (control thread, vCPU threads parked or not started).
  std::unique_ptr<RamBlock> block_;
  std::vector<RamBlock*> ram_view_;
  std::unique_ptr<KvmVm> vm_;
  WorkloadSpec spec_;
  uint64_t total_pages_ = 0, data_first_ = 0, wss_pages_ = 0;
  bool has_workload_ = false;
  uint32_t reap_ms_ = 1;
  std::vector<std::unique_ptr<Vcpu>> vcpus_;

  // Control thread only.
  bool running_ = false;
  bool threads_started_ = false;

  // Run control, under run_mu_: pause_req_ (also read lock-free at PROGRESS exits), exit_,
  // parked_.
  mutable std::mutex run_mu_;
  std::condition_variable run_cv_;     // vCPUs wait here while parked or pacing
  std::condition_variable parked_cv_;  // the control thread waits for all parked
  std::atomic<bool> pause_req_{true};
  bool exit_ = false;
  uint32_t parked_ = 0;
  std::atomic<uint64_t> stop_at_{UINT64_MAX};
  std::string error_;  // under run_mu_

  // Dirty tracking. harvest_mu_ serialises ring harvests/resets and guards scratch_.
  // logging_ (the reaper harvests) = migration_log_ || limit_tracking_, both under harvest_mu_.
  std::atomic<bool> logging_{false};
  bool migration_log_ = false;
  bool limit_tracking_ = false;
  std::mutex harvest_mu_;
  std::vector<uint64_t> scratch_;
  AtomicBitmap pending_;  // 4 KiB pages harvested but not yet collected
  AtomicBitmap seen_;     // pages counted since the last ring reset (per-vCPU dirty counts)
  std::chrono::steady_clock::time_point last_reset_;
  std::atomic<bool> reaper_exit_{false};
  // Set by the destructor before it kicks vCPU threads out of KVM_RUN with a signal (a vCPU
  // can be blocked in a userfaultfd fault that will never be served, e.g. a failed postcopy).
  std::atomic<bool> quit_{false};
  std::thread reaper_;

  // Free page reporting. report_cmd_: the id reports must carry (0 = not reporting), written
  // by the control thread, read by vCPU threads; reports_ (entries taken, current id only)
  // under report_mu_; report_session_ and last_cmd_: control thread.
  std::atomic<uint32_t> report_cmd_{0};
  uint32_t last_cmd_ = 0;
  uint64_t report_session_ = 0;
  std::mutex report_mu_;
  std::vector<tern_kvm_report_entry> reports_;

  // Destination: the guest's own checks since load_state are counted against these.
  std::string first_mismatch_;  // under run_mu_
};

// The signal that kicks a vCPU thread out of KVM_RUN (installs its no-op handler once).
int kvm_kick_signal();

// Destination factory for IncomingMigration: KvmGuest::create_incoming.
GuestFactory make_kvm_guest_factory();

}  // namespace tern
