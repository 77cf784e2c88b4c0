// Thread guest: device/vCPU state (save_state / load_state) and memory verification.
// Control thread only, guest paused (or, for load_state, never started).
//
// State blob, version 1, little-endian:
//   u64 magic "TERNTGST" | u32 version | u32 vcpus | u32 spec length | spec (to_string form)
//   | per vCPU: u64 rng, cursor, ops, writes, reads | u64 FNV-1a of everything before
#include <algorithm>
#include <cstring>
#include <functional>
#include <thread>

#include "vm/page_content.h"
#include "vm/thread_guest.h"
#include "vm/thread_guest_vcpu.h"

namespace tern {
namespace {

constexpr uint64_t kStateMagic = 0x545347544e524554;  // "TERNTGST"
constexpr uint32_t kStateVersion = 1;
constexpr size_t kVcpuRecord = 5 * 8;

uint64_t fnv1a(const uint8_t* p, size_t n) {
  uint64_t h = 0xcbf29ce484222325;
  for (size_t i = 0; i < n; ++i) h = (h ^ p[i]) * 0x100000001b3;
  return h;
}

template <typename T>
void put(std::vector<uint8_t>& out, T v) {
  uint8_t b[sizeof(T)];
  std::memcpy(b, &v, sizeof(T));
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
  return Status(Code::kProtocol, "thread guest state: " + why);
}

}  // namespace

std::vector<uint8_t> ThreadGuest::save_state() {
  if (!has_workload_ || running_) return {};
  std::vector<uint8_t> out;
  std::string spec = spec_.to_string();
  put<uint64_t>(out, kStateMagic);
  put<uint32_t>(out, kStateVersion);
  put<uint32_t>(out, static_cast<uint32_t>(vcpus_.size()));
  put<uint32_t>(out, static_cast<uint32_t>(spec.size()));
  out.insert(out.end(), spec.begin(), spec.end());
  for (auto& v : vcpus_) {
    put<uint64_t>(out, v->rng);
    put<uint64_t>(out, v->cursor);
    put<uint64_t>(out, v->ops.load(std::memory_order_relaxed));
    put<uint64_t>(out, v->writes.load(std::memory_order_relaxed));
    put<uint64_t>(out, v->reads.load(std::memory_order_relaxed));
  }
  put<uint64_t>(out, fnv1a(out.data(), out.size()));
  return out;
}

Status ThreadGuest::load_state(const std::vector<uint8_t>& state) {
  if (threads_started_)
    return Status(Code::kInvalidArgument, "thread guest: load_state() on a guest that has run");
  if (state.empty()) return bad_state("empty (was the source guest paused when it was saved?)");
  if (state.size() < 8 + 4 * 3 + 8) return bad_state(std::to_string(state.size()) + " bytes is too short");
  uint64_t sum = 0;
  std::memcpy(&sum, state.data() + state.size() - 8, 8);
  Reader r{state.data(), state.size() - 8};
  uint64_t magic = 0;
  uint32_t version = 0, vcpus = 0, spec_len = 0;
  (void)r.get(magic);
  if (magic != kStateMagic) return bad_state("bad magic (not a thread guest state)");
  (void)r.get(version);
  if (version != kStateVersion)
    return bad_state("version " + std::to_string(version) + ", this build reads version " +
                     std::to_string(kStateVersion));
  if (sum != fnv1a(state.data(), state.size() - 8)) return bad_state("checksum mismatch (corrupt)");
  (void)r.get(vcpus);
  if (!r.get(spec_len) || spec_len > r.left) return bad_state("truncated workload spec");
  std::string text(reinterpret_cast<const char*>(r.p), spec_len);
  r.p += spec_len;
  r.left -= spec_len;
  auto spec = parse_workload(text);
  if (!spec) return bad_state("bad workload spec: " + spec.status().message());
  if (spec->vcpus != vcpus)
    return bad_state("spec has " + std::to_string(spec->vcpus) + " vCPUs, state has " +
                     std::to_string(vcpus));
  if (r.left != vcpus * kVcpuRecord)
    return bad_state("expected " + std::to_string(vcpus * kVcpuRecord) + " bytes of vCPU state, got " +
                     std::to_string(r.left));
  if (Status s = setup_workload(*spec); !s) return s;
  for (auto& v : vcpus_) {
    uint64_t rng = 0, cursor = 0, ops = 0, writes = 0, reads = 0;
    (void)(r.get(rng) && r.get(cursor) && r.get(ops) && r.get(writes) && r.get(reads));
    if (rng == 0 || cursor >= v->pages) {
      has_workload_ = false;
      vcpus_.clear();
      return bad_state("vCPU " + std::to_string(v->index) + " progress out of range");
    }
    v->rng = rng;
    v->cursor = cursor;
    v->ops.store(ops, std::memory_order_relaxed);
    v->writes.store(writes, std::memory_order_relaxed);
    v->reads.store(reads, std::memory_order_relaxed);
  }
  check_touch_ = true;
  return Status::ok();
}

Status ThreadGuest::prefill() {
  if (!has_workload_) return Status(Code::kUnavailable, "thread guest: no workload to prefill");
  if (running_) return Status(Code::kUnavailable, "thread guest: prefill needs the guest paused");
  for (uint64_t p = table_pages_; p < table_pages_ + wss_pages_; ++p) {
    std::atomic_ref<uint32_t> version(table()[p]);
    if (version.load(std::memory_order_relaxed) != 0) continue;
    fill_page(page_ptr(p), p, 1);
    version.store(1, std::memory_order_release);
  }
  return Status::ok();
}

VerifyReport ThreadGuest::verify() {
  VerifyReport rep = verify_counters();
  std::string first;
  // The table's own entries (for the table pages) are never written.
  for (uint64_t p = 0; p < table_pages_; ++p)
    if (uint32_t v = page_version(p); v != 0 && rep.mismatches++ == 0)
      first = "page " + std::to_string(p) + ": version table page, but its table entry is " +
              std::to_string(v);
  // Data pages, split over a few threads (1 GiB takes ~0.3 s on one core, mostly faulting in
  // never-written pages). Each part keeps its count and its first (lowest) bad page.
  struct Part {
    uint64_t begin, end, mismatches = 0;
    std::string first;
  };
  const uint64_t n = target_pages_ - table_pages_;
  const uint64_t parts = std::clamp<uint64_t>(std::thread::hardware_concurrency(), 1,
                                              std::min<uint64_t>(4, n / 4096 + 1));
  std::vector<Part> work;
  for (uint64_t i = 0; i < parts; ++i)
    work.push_back({table_pages_ + n * i / parts, table_pages_ + n * (i + 1) / parts});
  auto run = [this](Part& part) {
    std::string why;
    for (uint64_t p = part.begin; p < part.end; ++p)
      if (!check_page(page_ptr(p), p, page_version(p), part.mismatches ? nullptr : &why) &&
          part.mismatches++ == 0)
        part.first = why;
  };
  std::vector<std::thread> helpers;
  for (uint64_t i = 1; i < parts; ++i) helpers.emplace_back(run, std::ref(work[i]));
  run(work[0]);
  for (auto& t : helpers) t.join();
  for (const Part& part : work) {
    if (part.mismatches && rep.mismatches == 0) first = part.first;
    rep.mismatches += part.mismatches;
  }
  rep.pages_checked = n;
  if (rep.mismatches) rep.first_mismatch = first;
  return rep;
}

VerifyReport ThreadGuest::verify_counters() const {
  VerifyReport rep;
  rep.touched_checked = touched_checked_.load(std::memory_order_relaxed);
  rep.touched_mismatches = touched_mismatches_.load(std::memory_order_relaxed);
  rep.first_touch_latency = touch_latency_.snapshot();
  if (rep.touched_mismatches) {
    std::lock_guard lk(touch_mu_);
    rep.first_mismatch = touch_first_mismatch_;
  }
  return rep;
}

}  // namespace tern
