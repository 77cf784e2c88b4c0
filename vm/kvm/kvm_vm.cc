// KvmVm: device, VM, memory slots, vCPUs and dirty tracking (ring or bitmap). The vCPU
// register setup and state transfer are in kvm_vcpu.cc.
#include "vm/kvm/kvm_vm.h"

#include <fcntl.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include <atomic>
#include <bit>

namespace tern {
namespace {

Status kvm_error(const std::string& what) { return errno_status("kvm: " + what); }

}  // namespace

std::string kvm_unavailable_reason() {
  int fd = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (fd < 0)
    return std::string("/dev/kvm cannot be opened (") + std::strerror(errno) +
           "): this host has no KVM (load kvm_intel/kvm_amd, or use --guest threads,...)";
  const int api = ::ioctl(fd, KVM_GET_API_VERSION, 0);
  ::close(fd);
  if (api != KVM_API_VERSION)
    return "/dev/kvm does not answer as KVM API " + std::to_string(KVM_API_VERSION) +
           " (use --guest threads,...)";
  return "";
}

Result<std::unique_ptr<KvmVm>> KvmVm::create(const std::vector<RamBlock*>& blocks,
                                             const Options& opt) {
  std::unique_ptr<KvmVm> vm(new KvmVm());
  if (Status s = vm->init(blocks, opt); !s) return s;
  return vm;
}

Status KvmVm::init(const std::vector<RamBlock*>& blocks, const Options& opt) {
  if (std::string why = kvm_unavailable_reason(); !why.empty())
    return Status(Code::kUnavailable, "kvm: " + why);
  kvm_fd_ = ::open("/dev/kvm", O_RDWR | O_CLOEXEC);
  if (kvm_fd_ < 0) return kvm_error("open /dev/kvm");
  if (::ioctl(kvm_fd_, KVM_GET_API_VERSION, 0) != KVM_API_VERSION)
    return Status(Code::kUnavailable, "kvm: unexpected KVM API version");
  vm_fd_ = ::ioctl(kvm_fd_, KVM_CREATE_VM, 0);
  if (vm_fd_ < 0) return kvm_error("KVM_CREATE_VM");
  int sz = ::ioctl(kvm_fd_, KVM_GET_VCPU_MMAP_SIZE, 0);
  if (sz <= 0) return kvm_error("KVM_GET_VCPU_MMAP_SIZE");
  run_size_ = static_cast<size_t>(sz);

  // The ring must be enabled before the first vCPU exists. ACQ_REL is the form that allows
  // harvesting while the vCPU runs without a full barrier on the KVM side; plain RING otherwise.
  if (opt.want_ring) {
    for (uint32_t cap :
         {uint32_t{KVM_CAP_DIRTY_LOG_RING_ACQ_REL}, uint32_t{KVM_CAP_DIRTY_LOG_RING}}) {
      int max_bytes = ::ioctl(vm_fd_, KVM_CHECK_EXTENSION, cap);
      if (max_bytes <= 0) continue;
      uint32_t entries =
          std::min<uint32_t>(std::bit_floor(std::max<uint32_t>(opt.ring_entries, 1024)),
                             static_cast<uint32_t>(max_bytes) / sizeof(kvm_dirty_gfn));
      kvm_enable_cap ec{};
      ec.cap = cap;
      ec.args[0] = uint64_t{entries} * sizeof(kvm_dirty_gfn);
      if (::ioctl(vm_fd_, KVM_ENABLE_CAP, &ec) != 0) continue;
      mode_ = KvmDirtyMode::kRing;
      acq_rel_ = cap == KVM_CAP_DIRTY_LOG_RING_ACQ_REL;
      ring_entries_ = entries;
      break;
    }
  }

  blocks_ = blocks;
  uint64_t gpa = 0;
  for (RamBlock* b : blocks) {
    slot_gpa_.push_back(gpa);
    gpa += b->size();
  }
  if (Status s = set_slots(0); !s) return s;

  // CPUID as KVM supports it, so the guest sees a consistent (if unused) CPU model.
  cpuid_.assign(sizeof(kvm_cpuid2) + 256 * sizeof(kvm_cpuid_entry2), 0);
  auto* cpuid = reinterpret_cast<kvm_cpuid2*>(cpuid_.data());
  cpuid->nent = 256;
  if (::ioctl(kvm_fd_, KVM_GET_SUPPORTED_CPUID, cpuid) != 0) cpuid_.clear();

  for (uint32_t i = 0; i < opt.vcpus; ++i) {
    Vcpu v;
    v.fd = ::ioctl(vm_fd_, KVM_CREATE_VCPU, i);
    if (v.fd < 0) return kvm_error("KVM_CREATE_VCPU " + std::to_string(i));
    vcpus_.push_back(v);
    Vcpu& vc = vcpus_.back();
    void* run = ::mmap(nullptr, run_size_, PROT_READ | PROT_WRITE, MAP_SHARED, vc.fd, 0);
    if (run == MAP_FAILED) return kvm_error("mmap kvm_run");
    vc.run = static_cast<kvm_run*>(run);
    if (!cpuid_.empty() && ::ioctl(vc.fd, KVM_SET_CPUID2, cpuid_.data()) != 0)
      return kvm_error("KVM_SET_CPUID2");
    if (mode_ == KvmDirtyMode::kRing) {
      void* ring =
          ::mmap(nullptr, size_t{ring_entries_} * sizeof(kvm_dirty_gfn), PROT_READ | PROT_WRITE,
                 MAP_SHARED, vc.fd, KVM_DIRTY_LOG_PAGE_OFFSET * ::getpagesize());
      if (ring == MAP_FAILED) return kvm_error("mmap dirty ring");
      vc.ring = static_cast<kvm_dirty_gfn*>(ring);
    }
  }
  return Status::ok();
}

KvmVm::~KvmVm() {
  for (Vcpu& v : vcpus_) {
    if (v.ring) ::munmap(v.ring, size_t{ring_entries_} * sizeof(kvm_dirty_gfn));
    if (v.run) ::munmap(v.run, run_size_);
    if (v.fd >= 0) ::close(v.fd);
  }
  if (vm_fd_ >= 0) ::close(vm_fd_);
  if (kvm_fd_ >= 0) ::close(kvm_fd_);
}

Status KvmVm::set_slots(uint32_t flags) {
  for (size_t i = 0; i < blocks_.size(); ++i) {
    kvm_userspace_memory_region r{};
    r.slot = static_cast<uint32_t>(i);
    r.flags = flags;
    r.guest_phys_addr = slot_gpa_[i];
    r.memory_size = blocks_[i]->size();
    r.userspace_addr = reinterpret_cast<uint64_t>(blocks_[i]->base());
    if (::ioctl(vm_fd_, KVM_SET_USER_MEMORY_REGION, &r) != 0)
      return kvm_error("KVM_SET_USER_MEMORY_REGION slot " + std::to_string(i));
  }
  return Status::ok();
}

Status KvmVm::set_dirty_logging(bool on) { return set_slots(on ? KVM_MEM_LOG_DIRTY_PAGES : 0); }

int KvmVm::run(uint32_t vcpu) { return ::ioctl(vcpus_[vcpu].fd, KVM_RUN, 0) == 0 ? 0 : -errno; }

uint64_t KvmVm::harvest(uint32_t vcpu, std::vector<uint64_t>& out) {
  Vcpu& v = vcpus_[vcpu];
  if (!v.ring) return 0;
  uint64_t n = 0;
  const uint32_t mask = ring_entries_ - 1;
  for (uint32_t i = 0; i < ring_entries_; ++i) {  // at most one lap, even if KVM overran it
    kvm_dirty_gfn& e = v.ring[v.fetch & mask];
    // Acquire pairs with KVM's release of the DIRTY flag: slot/offset are valid once it shows.
    uint32_t flags = std::atomic_ref<uint32_t>(e.flags).load(std::memory_order_acquire);
    if (!(flags & KVM_DIRTY_GFN_F_DIRTY)) break;
    uint32_t slot = e.slot & 0xffff;  // low 16 bits: slot id (address space 0 only)
    if (slot < slot_gpa_.size()) out.push_back(slot_gpa_[slot] / 4096 + e.offset);
    std::atomic_ref<uint32_t>(e.flags).store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
    ++v.fetch;
    ++n;
  }
  return n;
}

uint64_t KvmVm::unjam(uint32_t vcpu) {
  Vcpu& v = vcpus_[vcpu];
  if (!v.ring) return 0;
  uint64_t n = 0;
  for (; n < ring_entries_; ++n, ++v.fetch) {
    kvm_dirty_gfn& e = v.ring[v.fetch & (ring_entries_ - 1)];
    if (std::atomic_ref<uint32_t>(e.flags).load(std::memory_order_acquire) & KVM_DIRTY_GFN_F_DIRTY)
      break;
    std::atomic_ref<uint32_t>(e.flags).store(KVM_DIRTY_GFN_F_RESET, std::memory_order_release);
  }
  return n;
}

Status KvmVm::reset_rings() {
  if (mode_ != KvmDirtyMode::kRing) return Status::ok();
  if (::ioctl(vm_fd_, KVM_RESET_DIRTY_RINGS, 0) < 0) return kvm_error("KVM_RESET_DIRTY_RINGS");
  return Status::ok();
}

Status KvmVm::get_dirty_log(std::vector<uint64_t>& out) {
  std::vector<uint64_t> bits;
  for (size_t i = 0; i < blocks_.size(); ++i) {
    const uint64_t pages = blocks_[i]->size() / 4096;
    bits.assign((pages + 63) / 64, 0);
    kvm_dirty_log log{};
    log.slot = static_cast<uint32_t>(i);
    log.dirty_bitmap = bits.data();
    if (::ioctl(vm_fd_, KVM_GET_DIRTY_LOG, &log) != 0) return kvm_error("KVM_GET_DIRTY_LOG");
    const uint64_t base = slot_gpa_[i] / 4096;
    for (uint64_t w = 0; w < bits.size(); ++w)
      for (uint64_t x = bits[w]; x; x &= x - 1) out.push_back(base + w * 64 + std::countr_zero(x));
  }
  return Status::ok();
}

}  // namespace tern
