// A KVM virtual machine over tern RAM: /dev/kvm, one VM, one memory slot per RAM block (slot i
// at the guest-physical address where the previous block ends), vCPUs with their kvm_run
// mapping and, when the host has it, a KVM dirty ring each. x86-64 only.
//
// Threads: created and configured by the control thread. run() and the vCPU state calls are
// made by whichever thread owns that vCPU (its run thread, or the control thread while it is
// parked). harvest()/reset_rings()/get_dirty_log() are serialised by the caller.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/ram_block.h"
#include "dataplane/status.h"

namespace tern {

// How writes are tracked while dirty logging is on.
enum class KvmDirtyMode { kRing, kBitmap };

struct KvmVcpuState;  // vm/kvm/kvm_vcpu_state.h

class KvmVm {
 public:
  struct Options {
    uint32_t vcpus = 1;
    bool want_ring = true;          // use the dirty ring if the host has one
    uint32_t ring_entries = 65536;  // per vCPU, power of two, capped by the host's maximum
  };
  // Opens /dev/kvm (a clear error if missing), creates the VM, enables the ring if possible,
  // registers `blocks` as slots 0.. and creates the vCPUs.
  static Result<std::unique_ptr<KvmVm>> create(const std::vector<RamBlock*>& blocks,
                                               const Options& opt);
  ~KvmVm();
  KvmVm(const KvmVm&) = delete;
  KvmVm& operator=(const KvmVm&) = delete;

  KvmDirtyMode dirty_mode() const { return mode_; }
  uint32_t ring_entries() const { return ring_entries_; }  // 0 in bitmap mode
  bool ring_acq_rel() const { return acq_rel_; }
  uint32_t vcpus() const { return static_cast<uint32_t>(vcpus_.size()); }
  kvm_run* run_area(uint32_t vcpu) const { return vcpus_[vcpu].run; }
  int vcpu_fd(uint32_t vcpu) const { return vcpus_[vcpu].fd; }
  int vm_fd() const { return vm_fd_; }

  // Sets or clears KVM_MEM_LOG_DIRTY_PAGES on every slot (vCPUs may be running).
  Status set_dirty_logging(bool on);

  // One KVM_RUN; returns 0 or -errno (EINTR when kicked).
  int run(uint32_t vcpu);

  // Ring mode: appends to `out` the guest page numbers (4 KiB, across slots) that vCPU `vcpu`
  // logged since the last harvest and marks them collected. Returns how many.
  uint64_t harvest(uint32_t vcpu, std::vector<uint64_t>& out);
  // Ring mode, recovery from an overrun ring (kvm_pvm can write past a full ring): marks the
  // entries from the harvest position up to the next dirty one as collected, so that
  // KVM_RESET_DIRTY_RINGS can move past them. Entries were lost: the caller must treat all
  // memory as dirty. Returns how many entries it skipped.
  uint64_t unjam(uint32_t vcpu);
  // Ring mode: lets KVM re-protect the collected entries (KVM_RESET_DIRTY_RINGS).
  Status reset_rings();
  // Bitmap mode: KVM_GET_DIRTY_LOG on every slot (get-and-clear); appends dirty page numbers.
  Status get_dirty_log(std::vector<uint64_t>& out);

  // Long-mode boot state for vCPU `vcpu`: rip, rsp, rdi = vcpu index, CR0/CR3/CR4/EFER, flat
  // 64-bit segments. The page tables and GDT are guest RAM, written by the caller.
  Status setup_long_mode(uint32_t vcpu, uint64_t rip, uint64_t rsp);
  Status get_state(uint32_t vcpu, KvmVcpuState& s);
  Status set_state(uint32_t vcpu, const KvmVcpuState& s);

 private:
  struct Vcpu {
    int fd = -1;
    kvm_run* run = nullptr;
    kvm_dirty_gfn* ring = nullptr;
    uint32_t fetch = 0;  // next ring entry to look at (harvest caller's lock)
  };
  KvmVm() = default;
  Status init(const std::vector<RamBlock*>& blocks, const Options& opt);
  Status set_slots(uint32_t flags);

  int kvm_fd_ = -1;
  int vm_fd_ = -1;
  size_t run_size_ = 0;
  KvmDirtyMode mode_ = KvmDirtyMode::kBitmap;
  bool acq_rel_ = false;
  uint32_t ring_entries_ = 0;
  std::vector<RamBlock*> blocks_;
  std::vector<uint64_t> slot_gpa_;  // guest-physical base of each slot
  std::vector<Vcpu> vcpus_;
  std::vector<uint8_t> cpuid_;  // kvm_cpuid2 + entries, set on every vCPU
};

// Whether /dev/kvm can be opened here; "" if so, else the reason (for skips and errors).
std::string kvm_unavailable_reason();

}  // namespace tern
