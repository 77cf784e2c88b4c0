// KvmGuest: creation, boot image, run control and counters. Dirty tracking is in
// kvm_guest_dirty.cc, the vCPU threads and the reaper in kvm_guest_run.cc, state and
// verification in kvm_guest_state.cc.
#include "vm/kvm/kvm_guest.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstring>
#include <mutex>

#include "vm/kvm/abi.h"
#include "vm/kvm/kvm_guest_vcpu.h"

namespace tern {

extern const uint8_t kKvmGuestProgram[];
extern const size_t kKvmGuestProgram_size;

namespace {

void kick_handler(int) {}

}  // namespace

int kvm_kick_signal() {
  // SIGRTMIN + 5: a real-time signal glibc leaves free; its handler does nothing but make
  // KVM_RUN return EINTR. Installed once, without SA_RESTART.
  static std::once_flag once;
  const int sig = SIGRTMIN + 5;
  std::call_once(once, [sig] {
    struct sigaction sa {};
    sa.sa_handler = kick_handler;
    sigemptyset(&sa.sa_mask);
    ::sigaction(sig, &sa, nullptr);
  });
  return sig;
}

KvmGuest::KvmGuest(std::unique_ptr<RamBlock> block)
    : block_(std::move(block)),
      total_pages_(block_->target_pages()),
      pending_(total_pages_),
      seen_(total_pages_) {
  ram_view_.push_back(block_.get());
}

KvmGuest::~KvmGuest() {
  {
    std::lock_guard lk(run_mu_);
    exit_ = true;
    pause_req_ = true;
  }
  quit_ = true;
  run_cv_.notify_all();
  for (auto& v : vcpus_) {
    if (!v->thread.joinable()) continue;
    // A running vCPU parks at its next PROGRESS exit; one stuck in KVM_RUN (a page fault
    // nobody serves) is kicked out: immediate_exit for the next entry, a signal for this one.
    for (int i = 0; !v->done.load() && i < 5000; ++i) {
      if (i % 10 == 9) {
        vm_->run_area(v->index)->immediate_exit = 1;
        ::pthread_kill(v->thread.native_handle(), kvm_kick_signal());
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    v->thread.join();
  }
  reaper_exit_ = true;
  if (reaper_.joinable()) reaper_.join();
  vm_.reset();  // before the RAM it maps
}

Status KvmGuest::set_geometry(const WorkloadSpec& spec) {
  if (Status s = spec.validate(); !s) return s;
  if (spec.ram_bytes > TERN_KVM_MAX_RAM)
    return Status(Code::kInvalidArgument, "kvm guest: ram=" + format_bytes(spec.ram_bytes) +
                                              " is above the 16 GiB the page tables map");
  if (spec.vcpus > TERN_KVM_MAX_VCPUS)
    return Status(Code::kInvalidArgument,
                  "kvm guest: at most " + std::to_string(TERN_KVM_MAX_VCPUS) + " vCPUs");
  if (spec.ram_bytes != block_->size() || spec.page_size != block_->host_page_size())
    return Status(Code::kInvalidArgument, "kvm guest: workload RAM does not match the RAM block");
  const uint64_t table_end = TERN_KVM_TABLE + total_pages_ * 4;
  data_first_ = ((table_end + (2u << 20) - 1) & ~uint64_t{(2u << 20) - 1}) / 4096;
  if (data_first_ + spec.vcpus > total_pages_)
    return Status(Code::kInvalidArgument, "kvm guest: ram=" + format_bytes(spec.ram_bytes) +
                                              " leaves no room for a working set (need >= 8 MiB)");
  const uint64_t data_pages = total_pages_ - data_first_;
  uint64_t wss = spec.wss_bytes
                     ? spec.wss_bytes / 4096
                     : static_cast<uint64_t>(static_cast<double>(total_pages_) * spec.wss_fraction);
  wss = std::clamp<uint64_t>(wss, spec.vcpus, data_pages);
  wss_pages_ = wss - wss % spec.vcpus;  // equal slices
  spec_ = spec;
  return Status::ok();
}

Status KvmGuest::write_boot_image(const Options& opt) {
  if (kKvmGuestProgram_size > TERN_KVM_CODE_MAX)
    return Status(Code::kInternal, "kvm guest: guest program too large");
  // Identity map of 16 GiB in 2 MiB pages; accessed/dirty bits preset so the CPU never writes
  // the tables (those writes would be guest RAM changes of their own).
  auto* pml4 = reinterpret_cast<uint64_t*>(gpa(TERN_KVM_PML4));
  auto* pdpt = reinterpret_cast<uint64_t*>(gpa(TERN_KVM_PDPT));
  pml4[0] = TERN_KVM_PDPT | 0x23;
  for (uint64_t i = 0; i < TERN_KVM_PD_COUNT; ++i) {
    pdpt[i] = (TERN_KVM_PD + i * 4096) | 0x23;
    auto* pd = reinterpret_cast<uint64_t*>(gpa(TERN_KVM_PD + i * 4096));
    for (uint64_t j = 0; j < 512; ++j) pd[j] = ((i * 512 + j) << 21) | 0xe3;
  }
  auto* gdt = reinterpret_cast<uint64_t*>(gpa(TERN_KVM_GDT));
  gdt[0] = 0;
  gdt[1] = 0x00af9b000000ffffull;  // 64-bit code, accessed
  gdt[2] = 0x00cf93000000ffffull;  // data, accessed

  auto* cfg = reinterpret_cast<tern_kvm_config*>(gpa(TERN_KVM_CONFIG));
  cfg->magic = TERN_KVM_CONFIG_MAGIC;
  cfg->vcpus = spec_.vcpus;
  cfg->total_pages = total_pages_;
  cfg->data_first_page = data_first_;
  cfg->wss_pages = wss_pages_;
  cfg->pattern = spec_.pattern == Pattern::kSequential ? TERN_KVM_SEQUENTIAL
                 : spec_.pattern == Pattern::kHotset   ? TERN_KVM_HOTSET
                                                       : TERN_KVM_RANDOM;
  cfg->hot_write_pct = spec_.hot_write_pct;
  cfg->hot_set_pct = spec_.hot_set_pct;
  cfg->read_pct = spec_.read_pct;
  cfg->batch = std::max<uint32_t>(opt.batch, 1);
  cfg->seed = spec_.seed;
  cfg->free_pct = spec_.free_pct;
  cfg->reuse_pct = spec_.reuse_pct;
  cfg->unit_pages = spec_.page_size / 4096;
  if (opt.vcpu_read_pct.size() > TERN_KVM_MAX_VCPUS)
    return Status(Code::kInvalidArgument, "kvm guest: more read shares than vCPUs");
  std::memset(cfg->vcpu_read_pct, 0xff, sizeof cfg->vcpu_read_pct);
  // WorkloadSpec::readers: the last N vCPUs only read (Options may still override each share).
  for (uint32_t i = spec_.vcpus - spec_.readers; i < spec_.vcpus && i < TERN_KVM_MAX_VCPUS; ++i)
    cfg->vcpu_read_pct[i] = 100;
  for (size_t i = 0; i < opt.vcpu_read_pct.size(); ++i) {
    if (opt.vcpu_read_pct[i] > 100)
      return Status(Code::kInvalidArgument, "kvm guest: a read share is above 100%");
    cfg->vcpu_read_pct[i] = static_cast<uint8_t>(opt.vcpu_read_pct[i]);
  }
  std::memcpy(gpa(TERN_KVM_CODE), kKvmGuestProgram, kKvmGuestProgram_size);
  return Status::ok();
}

Result<std::unique_ptr<KvmGuest>> KvmGuest::create(const WorkloadSpec& spec, Options opt) {
  if (std::string why = kvm_unavailable_reason(); !why.empty())
    return Status(Code::kUnavailable, "kvm guest: " + why);
  auto block = RamBlock::create(kKvmBlockName, spec.ram_bytes, spec.page_size, opt.backing);
  if (!block) return block.status();
  std::unique_ptr<KvmGuest> g(new KvmGuest(std::move(block).value()));
  if (Status s = g->set_geometry(spec); !s) return s;
  if (Status s = g->write_boot_image(opt); !s) return s;
  KvmVm::Options vo;
  vo.vcpus = spec.vcpus;
  vo.want_ring = opt.want_ring;
  vo.ring_entries = std::max(opt.kernel_ring_entries, spec.ring_entries);
  g->reap_ms_ = opt.reap_ms;
  auto vm = KvmVm::create(g->ram_view_, vo);
  if (!vm) return vm.status();
  g->vm_ = std::move(vm).value();
  for (uint32_t i = 0; i < spec.vcpus; ++i) {
    const uint64_t stack_top = TERN_KVM_STACKS + (i + 1) * TERN_KVM_STACK_SIZE - 8;
    if (Status s = g->vm_->setup_long_mode(i, TERN_KVM_CODE, stack_top); !s) return s;
    g->vcpus_.push_back(std::make_unique<Vcpu>(i));
    g->vcpus_.back()->area = reinterpret_cast<tern_kvm_area*>(g->gpa(TERN_KVM_AREAS)) + i;
  }
  g->has_workload_ = true;
  return g;
}

Result<std::unique_ptr<KvmGuest>> KvmGuest::create_incoming(const Layout& layout,
                                                             RamBacking backing) {
  if (layout.blocks.size() != 1 || layout.blocks[0].name != kKvmBlockName)
    return Status(Code::kInvalidArgument,
                  "kvm guest: the incoming layout is not a KVM guest's (one block 'kvm-ram')");
  if (std::string why = kvm_unavailable_reason(); !why.empty())
    return Status(Code::kUnavailable, "kvm guest: " + why);
  const BlockInfo& b = layout.blocks[0];
  if (b.size > TERN_KVM_MAX_RAM)
    return Status(Code::kInvalidArgument, "kvm guest: incoming RAM above 16 GiB");
  auto block = RamBlock::create(b.name, b.size, b.host_page_size, backing);
  if (!block) return block.status();
  return std::unique_ptr<KvmGuest>(new KvmGuest(std::move(block).value()));
}

void KvmGuest::spawn_threads() {
  parked_ = 0;
  for (auto& v : vcpus_) v->thread = std::thread([this, vp = v.get()] { vcpu_main(*vp); });
  if (reap_ms_) reaper_ = std::thread([this] { reaper_main(); });
  threads_started_ = true;
}

Status KvmGuest::start() {
  if (!has_workload_) return Status(Code::kInvalidArgument, "kvm guest: no state loaded");
  if (running_) return Status::ok();
  if (std::string e = error(); !e.empty()) return Status(Code::kInternal, "kvm guest: " + e);
  {
    std::lock_guard lk(run_mu_);
    pause_req_ = false;
  }
  if (!threads_started_) spawn_threads();
  run_cv_.notify_all();
  running_ = true;
  return Status::ok();
}

void KvmGuest::pause() {
  if (!threads_started_) return;
  std::unique_lock lk(run_mu_);
  pause_req_ = true;
  run_cv_.notify_all();
  parked_cv_.wait(lk, [&] { return parked_ == vcpus_.size(); });
  running_ = false;
}

Status KvmGuest::run_ops(uint64_t ops_per_vcpu) {
  stop_at_ = ops_per_vcpu;
  if (Status s = start(); !s) return s;
  {
    std::unique_lock lk(run_mu_);
    // Parked here means: budget reached (or failed). pause_req_ stays false meanwhile.
    parked_cv_.wait(lk, [&] {
      if (!error_.empty()) return true;
      for (auto& v : vcpus_)
        if (v->ops.load() < ops_per_vcpu) return false;
      return parked_ == vcpus_.size();
    });
  }
  pause();
  stop_at_ = UINT64_MAX;
  if (std::string e = error(); !e.empty()) return Status(Code::kInternal, "kvm guest: " + e);
  return Status::ok();
}

std::string KvmGuest::error() const {
  std::lock_guard lk(run_mu_);
  return error_;
}

uint32_t KvmGuest::page_version(uint64_t page) const {
  return reinterpret_cast<const volatile uint32_t*>(gpa(TERN_KVM_TABLE))[page];
}

KvmVcpuCounters KvmGuest::vcpu_counters(uint32_t vcpu) const {
  const Vcpu& v = *vcpus_[vcpu];
  return {v.ops.load(),        v.writes.load(),         v.reads.load(),
          v.checks.load(),     v.mismatches.load(),     v.progress_exits.load(),
          v.ring_overruns.load(), v.frees.load(),        v.reuses.load()};
}

uint32_t KvmGuest::dirty_limit_vcpus() const {
  return vm_ && vm_->dirty_mode() == KvmDirtyMode::kRing ? vcpus() : 0;
}

DirtyRingCounters KvmGuest::dirty_ring_counters(uint32_t vcpu) const {
  if (vcpu >= vcpus_.size()) return {};
  const Vcpu& v = *vcpus_[vcpu];
  const RingExitRecord::Snapshot e = v.exits.read();
  return {.dirty_pages = std::max(v.dirty_pages.load(), e.at_pages),
          .ring_full_exits = e.exits,
          .ring_full_ns = v.ring_full_ns.load(),
          .penalty_ns = v.penalty_ns.load(),
          .ops = v.ops.load(),
          .last_exit_ns = e.at_ns,
          .pages_at_last_exit = e.at_pages};
}

void KvmGuest::set_ring_full_penalty(uint32_t vcpu, uint64_t microseconds) {
  if (vcpu < vcpus_.size()) vcpus_[vcpu]->penalty_us.store(microseconds);
}

std::string KvmGuest::describe() const {
  std::string d = "kvm: " + std::to_string(spec_.vcpus) + " vCPUs, " +
                  format_bytes(block_->size()) + ", " + (block_->hugetlb() ? "2M" : "4K") +
                  " pages";
  if (has_workload_)
    d += ", wss " + format_bytes(wss_pages_ * 4096) + ", " + pattern_name(spec_.pattern) +
         (spec_.rate ? ", " + std::to_string(spec_.rate) + " pages/s/vCPU" : ", unpaced");
  if (vm_)
    d += vm_->dirty_mode() == KvmDirtyMode::kRing
             ? std::string(", dirty ring") + (vm_->ring_acq_rel() ? " (acq-rel)" : "")
             : std::string(", dirty bitmap");
  return d;
}

GuestFactory make_kvm_guest_factory() {
  return [](const Layout& layout) -> Result<std::unique_ptr<Guest>> {
    auto g = KvmGuest::create_incoming(layout);
    if (!g) return g.status();
    return std::unique_ptr<Guest>(std::move(g).value());
  };
}

}  // namespace tern
