// KvmGuest state moved at switchover (save_state / load_state) and memory verification.
// Control thread only, guest paused (or, for load_state, never started).
//
// State blob, version 1, little-endian:
//   u64 magic "TERNKVMS" | u32 version | u32 vCPUs | u32 spec length | spec (to_string form)
//   | per vCPU: kvm_regs | kvm_sregs | kvm_fpu | u32 MSR count | (u32 index, u64 value)...
//             | u64 checks, mismatches (the guest program's counters at the switch)
//   | u64 FNV-1a of everything before
#include <cstring>

#include "vm/kvm/kvm_guest_vcpu.h"
#include "vm/kvm/kvm_vcpu_state.h"

namespace tern {
namespace {

constexpr uint64_t kStateMagic = 0x534d564b4e524554;  // "TERNKVMS"
constexpr uint32_t kStateVersion = 1;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3;
  return h;
}

template <typename T>
void put(std::vector<uint8_t>& out, const T& v) {
  const auto* b = reinterpret_cast<const uint8_t*>(&v);
  out.insert(out.end(), b, b + sizeof(T));
}

struct Reader {
  const uint8_t* p;
  size_t left;
  template <typename T>
  bool get(T& v) {
    if (left < sizeof(T)) return false;
    std::memcpy(&v, p, sizeof(T));
    p += sizeof(T);
    left -= sizeof(T);
    return true;
  }
};

Status bad_state(const std::string& why) {
  return Status(Code::kProtocol, "kvm guest state: " + why);
}

}  // namespace

std::vector<uint8_t> KvmGuest::save_state() {
  if (!has_workload_ || running_) return {};
  std::vector<uint8_t> out;
  const std::string spec = spec_.to_string();
  put<uint64_t>(out, kStateMagic);
  put<uint32_t>(out, kStateVersion);
  put<uint32_t>(out, vcpus());
  put<uint32_t>(out, static_cast<uint32_t>(spec.size()));
  out.insert(out.end(), spec.begin(), spec.end());
  for (auto& v : vcpus_) {
    KvmVcpuState st;
    if (!vm_->get_state(v->index, st)) return {};
    put(out, st.regs);
    put(out, st.sregs);
    put(out, st.fpu);
    put<uint32_t>(out, static_cast<uint32_t>(st.msrs.size()));
    for (const auto& [index, value] : st.msrs) {
      put<uint32_t>(out, index);
      put<uint64_t>(out, value);
    }
    put<uint64_t>(out, uint64_t{v->area->checks});
    put<uint64_t>(out, uint64_t{v->area->mismatches});
  }
  put<uint64_t>(out, fnv1a(out.data(), out.size()));
  return out;
}

Status KvmGuest::load_state(const std::vector<uint8_t>& state) {
  if (has_workload_) return Status(Code::kInvalidArgument, "kvm guest: state already loaded");
  if (state.size() < 8 || fnv1a(state.data(), state.size() - 8) != [&] {
        uint64_t h;
        std::memcpy(&h, state.data() + state.size() - 8, 8);
        return h;
      }())
    return bad_state("checksum mismatch or truncated");
  Reader r{state.data(), state.size() - 8};
  uint64_t magic = 0;
  uint32_t version = 0, n = 0, len = 0;
  if (!r.get(magic) || magic != kStateMagic) return bad_state("not a KVM guest's state");
  if (!r.get(version) || version != kStateVersion) return bad_state("unknown version");
  if (!r.get(n) || !r.get(len) || len > r.left) return bad_state("truncated header");
  auto spec = parse_workload(std::string_view(reinterpret_cast<const char*>(r.p), len));
  r.p += len;
  r.left -= len;
  if (!spec) return bad_state(spec.status().message());
  if (spec->vcpus != n) return bad_state("vCPU count disagrees with the spec");
  if (Status s = set_geometry(*spec); !s) return s;

  KvmVm::Options vo;
  vo.vcpus = n;
  vo.want_ring = true;
  vo.ring_entries = std::max<uint32_t>(65536, spec->ring_entries);
  auto vm = KvmVm::create(ram_view_, vo);
  if (!vm) return vm.status();
  vm_ = std::move(vm).value();
  vcpus_.clear();
  for (uint32_t i = 0; i < n; ++i) {
    KvmVcpuState st;
    uint32_t msrs = 0;
    if (!r.get(st.regs) || !r.get(st.sregs) || !r.get(st.fpu) || !r.get(msrs) || msrs > 64)
      return bad_state("truncated vCPU " + std::to_string(i));
    for (uint32_t m = 0; m < msrs; ++m) {
      uint32_t index;
      uint64_t value;
      if (!r.get(index) || !r.get(value)) return bad_state("truncated MSRs");
      st.msrs.emplace_back(index, value);
    }
    auto v = std::make_unique<Vcpu>(i);
    if (!r.get(v->base_checks) || !r.get(v->base_mismatches))
      return bad_state("truncated counters");
    v->checks = v->base_checks;
    v->mismatches = v->base_mismatches;
    if (Status s = vm_->set_state(i, st); !s) return s;
    v->area = reinterpret_cast<tern_kvm_area*>(gpa(TERN_KVM_AREAS)) + i;
    vcpus_.push_back(std::move(v));
  }
  if (r.left != 0) return bad_state("trailing bytes");
  has_workload_ = true;
  return Status::ok();
}

VerifyReport KvmGuest::verify() {
  VerifyReport rep;
  if (!has_workload_) return rep;
  const auto* table = reinterpret_cast<const uint32_t*>(gpa(TERN_KVM_TABLE));
  for (uint64_t p = data_first_; p < total_pages_; ++p) {
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
  rep.pages_checked = total_pages_ - data_first_;
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
