// KvmVm vCPU registers: the long-mode boot state and the state moved at switchover.
#include <sys/ioctl.h>

#include <cerrno>

#include "vm/kvm/abi.h"
#include "vm/kvm/kvm_vcpu_state.h"
#include "vm/kvm/kvm_vm.h"

namespace tern {
namespace {

constexpr uint64_t kCr0Pe = 1, kCr0Mp = 2, kCr0Et = 0x10, kCr0Ne = 0x20, kCr0Wp = 0x10000,
                   kCr0Am = 0x40000, kCr0Pg = 0x80000000;
constexpr uint64_t kCr4Pae = 0x20;
constexpr uint64_t kEferLme = 0x100, kEferLma = 0x400;

kvm_segment flat_segment(uint16_t selector, bool code) {
  kvm_segment s{};
  s.base = 0;
  s.limit = 0xffffffff;
  s.selector = selector;
  s.type = code ? 11 : 3;  // execute/read accessed : read/write accessed
  s.present = 1;
  s.s = 1;
  s.g = 1;
  s.l = code ? 1 : 0;
  s.db = code ? 0 : 1;
  return s;
}

Status vcpu_error(const std::string& what, uint32_t vcpu) {
  return errno_status("kvm: " + what + " (vCPU " + std::to_string(vcpu) + ")");
}

// A kvm_msrs with one entry (kvm_msrs ends in a flexible array).
struct OneMsr {
  alignas(8) uint8_t buf[sizeof(kvm_msrs) + sizeof(kvm_msr_entry)] = {};
  explicit OneMsr(uint32_t index) {
    reinterpret_cast<kvm_msrs*>(buf)->nmsrs = 1;
    entry()->index = index;
  }
  kvm_msr_entry* entry() { return reinterpret_cast<kvm_msr_entry*>(buf + sizeof(kvm_msrs)); }
};

}  // namespace

const std::vector<uint32_t>& kvm_saved_msrs() {
  static const std::vector<uint32_t> msrs = {
      0x10,                                            // IA32_TSC
      0x174,      0x175,      0x176,                   // SYSENTER CS/ESP/EIP
      0xc0000081, 0xc0000082, 0xc0000083, 0xc0000084,  // STAR LSTAR CSTAR SFMASK
      0xc0000100, 0xc0000101, 0xc0000102,              // FS/GS/KERNEL_GS base
  };
  return msrs;
}

Status KvmVm::setup_long_mode(uint32_t vcpu, uint64_t rip, uint64_t rsp) {
  const int fd = vcpus_[vcpu].fd;
  kvm_sregs s{};
  if (::ioctl(fd, KVM_GET_SREGS, &s) != 0) return vcpu_error("KVM_GET_SREGS", vcpu);
  s.cs = flat_segment(8, true);
  s.ds = s.es = s.fs = s.gs = s.ss = flat_segment(16, false);
  s.gdt.base = TERN_KVM_GDT;
  s.gdt.limit = 3 * 8 - 1;
  s.cr3 = TERN_KVM_PML4;
  s.cr4 = kCr4Pae;
  s.cr0 = kCr0Pe | kCr0Mp | kCr0Et | kCr0Ne | kCr0Wp | kCr0Am | kCr0Pg;
  s.efer = kEferLme | kEferLma;
  if (::ioctl(fd, KVM_SET_SREGS, &s) != 0) return vcpu_error("KVM_SET_SREGS", vcpu);
  kvm_regs r{};
  r.rip = rip;
  r.rsp = rsp;
  r.rdi = vcpu;
  r.rflags = 2;
  if (::ioctl(fd, KVM_SET_REGS, &r) != 0) return vcpu_error("KVM_SET_REGS", vcpu);
  return Status::ok();
}

Status KvmVm::get_state(uint32_t vcpu, KvmVcpuState& st) {
  const int fd = vcpus_[vcpu].fd;
  if (::ioctl(fd, KVM_GET_REGS, &st.regs) != 0) return vcpu_error("KVM_GET_REGS", vcpu);
  if (::ioctl(fd, KVM_GET_SREGS, &st.sregs) != 0) return vcpu_error("KVM_GET_SREGS", vcpu);
  if (::ioctl(fd, KVM_GET_FPU, &st.fpu) != 0) return vcpu_error("KVM_GET_FPU", vcpu);
  st.msrs.clear();
  // One MSR at a time: a host that refuses one (an emulating KVM may) loses only that one.
  for (uint32_t index : kvm_saved_msrs()) {
    OneMsr m(index);
    if (::ioctl(fd, KVM_GET_MSRS, m.buf) == 1) st.msrs.emplace_back(index, m.entry()->data);
  }
  return Status::ok();
}

Status KvmVm::set_state(uint32_t vcpu, const KvmVcpuState& st) {
  const int fd = vcpus_[vcpu].fd;
  if (::ioctl(fd, KVM_SET_SREGS, &st.sregs) != 0) return vcpu_error("KVM_SET_SREGS", vcpu);
  if (::ioctl(fd, KVM_SET_REGS, &st.regs) != 0) return vcpu_error("KVM_SET_REGS", vcpu);
  if (::ioctl(fd, KVM_SET_FPU, &st.fpu) != 0) return vcpu_error("KVM_SET_FPU", vcpu);
  for (const auto& [index, value] : st.msrs) {
    OneMsr m(index);
    m.entry()->data = value;
    if (::ioctl(fd, KVM_SET_MSRS, m.buf) != 1)
      return Status(Code::kIo, "kvm: KVM_SET_MSRS refused MSR " + std::to_string(index) +
                                   " (vCPU " + std::to_string(vcpu) + ")");
  }
  return Status::ok();
}

}  // namespace tern
