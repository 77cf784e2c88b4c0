// KvmGuest state moved at switchover (save_state / load_state) and memory verification.
// Control thread only, guest paused (or, for load_state, never started).
//
// State blob, version 1, framed by vm/state_codec.h (magic "TERNKVMS"):
//   header | per vCPU: kvm_regs | kvm_sregs | kvm_fpu | u32 MSR count | (u32 index, u64 value)...
//                    | u64 checks, mismatches (the guest program's counters at the switch)
//   | checksum
#include <algorithm>
#include <cstdio>

#include "vm/kvm/kvm_guest_vcpu.h"
#include "vm/kvm/kvm_vcpu_state.h"
#include "vm/state_codec.h"

namespace tern {
namespace {

constexpr StateFormat kFormat{0x534d564b4e524554 /* "TERNKVMS" */, 1, "kvm guest state"};
constexpr uint32_t kMaxMsrs = 64;

}  // namespace

std::vector<uint8_t> KvmGuest::save_state() {
  if (!has_workload_ || running_) return {};
  StateWriter w(kFormat, vcpus(), spec_);
  for (auto& v : vcpus_) {
    KvmVcpuState st;
    if (!vm_->get_state(v->index, st)) return {};
    w.put(st.regs);
    w.put(st.sregs);
    w.put(st.fpu);
    w.put<uint32_t>(static_cast<uint32_t>(st.msrs.size()));
    for (const auto& [index, value] : st.msrs) {
      w.put<uint32_t>(index);
      w.put<uint64_t>(value);
    }
    w.put<uint64_t>(uint64_t{v->area->checks});
    w.put<uint64_t>(uint64_t{v->area->mismatches});
  }
  return std::move(w).finish();
}

Status KvmGuest::load_state(const std::vector<uint8_t>& state) {
  if (has_workload_) return Status(Code::kInvalidArgument, "kvm guest: state already loaded");
  auto r = StateReader::open(kFormat, state);
  if (!r) return r.status();
  const uint32_t n = r->vcpus();
  if (Status s = set_geometry(r->spec()); !s) return s;

  KvmVm::Options vo;
  vo.vcpus = n;
  vo.want_ring = true;
  vo.ring_entries = std::max<uint32_t>(65536, r->spec().ring_entries);
  auto vm = KvmVm::create(ram_view_, vo);
  if (!vm) return vm.status();
  vm_ = std::move(vm).value();
  vcpus_.clear();
  for (uint32_t i = 0; i < n; ++i) {
    KvmVcpuState st;
    uint32_t msrs = 0;
    if (!r->get(st.regs) || !r->get(st.sregs) || !r->get(st.fpu) || !r->get(msrs))
      return r->error("truncated vCPU " + std::to_string(i));
    if (msrs > kMaxMsrs)
      return r->error("vCPU " + std::to_string(i) + " has " + std::to_string(msrs) +
                      " MSRs, at most " + std::to_string(kMaxMsrs) + " are read");
    for (uint32_t m = 0; m < msrs; ++m) {
      uint32_t index;
      uint64_t value;
      if (!r->get(index) || !r->get(value)) return r->error("truncated MSRs");
      st.msrs.emplace_back(index, value);
    }
    auto v = std::make_unique<Vcpu>(i);
    if (!r->get(v->base_checks) || !r->get(v->base_mismatches))
      return r->error("truncated counters");
    v->checks = v->base_checks;
    v->mismatches = v->base_mismatches;
    if (Status s = vm_->set_state(i, st); !s) return s;
    v->area = reinterpret_cast<tern_kvm_area*>(gpa(TERN_KVM_AREAS)) + i;
    vcpus_.push_back(std::move(v));
  }
  if (Status s = r->finish(); !s) return s;
  has_workload_ = true;
  return Status::ok();
}

VerifyReport KvmGuest::verify() {
  VerifyReport rep;
  if (!has_workload_) return rep;
  const auto* table = reinterpret_cast<const uint32_t*>(gpa(TERN_KVM_TABLE));
  uint64_t free = 0;
  for (uint64_t p = data_first_; p < total_pages_; ++p) {
    if (table[p] & TERN_KVM_FREE) {  // freed by the heap: dead content, never checked
      ++free;
      continue;
    }
    const uint64_t found = *reinterpret_cast<const uint64_t*>(gpa(p * 4096));
    const uint64_t expected = tern_kvm_word(p, table[p]);
    if (found != expected && rep.mismatches++ == 0) {
      char b[160];
      std::snprintf(b, sizeof b, "page %llu: holds %#llx, the version table says %#llx",
                    static_cast<unsigned long long>(p), static_cast<unsigned long long>(found),
                    static_cast<unsigned long long>(expected));
      rep.first_mismatch = b;
    }
  }
  rep.pages_checked = total_pages_ - data_first_ - free;
  VerifyReport own = verify_counters();
  rep.touched_checked = own.touched_checked;
  rep.touched_mismatches = own.touched_mismatches;
  if (rep.first_mismatch.empty()) rep.first_mismatch = own.first_mismatch;
  return rep;
}

// The guest program's own checks since load_state (or since boot on the source): every
// operation checks its page against the table before using it.
VerifyReport KvmGuest::verify_counters() const {
  VerifyReport rep;
  for (const auto& v : vcpus_) {
    rep.touched_checked += v->checks.load() - v->base_checks;
    rep.touched_mismatches += v->mismatches.load() - v->base_mismatches;
  }
  if (rep.touched_mismatches) {
    std::lock_guard lk(run_mu_);
    rep.first_mismatch = first_mismatch_;
  }
  return rep;
}

}  // namespace tern
