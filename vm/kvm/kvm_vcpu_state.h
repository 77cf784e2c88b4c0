// The state of one vCPU that moves at switchover: general and special registers, FPU, the
// MSRs the guest program may touch. Serialised by vm/kvm/kvm_guest_state.cc.
#pragma once

#include <linux/kvm.h>

#include <cstdint>
#include <utility>
#include <vector>

namespace tern {

struct KvmVcpuState {
  kvm_regs regs{};
  kvm_sregs sregs{};
  kvm_fpu fpu{};
  std::vector<std::pair<uint32_t, uint64_t>> msrs;  // (index, value)
};

// MSRs saved and restored: SYSENTER, syscall targets, FS/GS bases, TSC. (EFER is in sregs.)
const std::vector<uint32_t>& kvm_saved_msrs();

}  // namespace tern
