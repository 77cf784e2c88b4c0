// Thread guest: device/vCPU state (save_state / load_state) and memory verification.
// Control thread only, guest paused (or, for load_state, never started).
//
// State blob, version 1, framed by vm/state_codec.h (magic "TERNTGST"):
//   header | per vCPU: u64 rng, cursor, ops, writes, reads | checksum
#include <algorithm>
#include <functional>
#include <thread>

#include "vm/page_content.h"
#include "vm/state_codec.h"
#include "vm/thread_guest.h"
#include "vm/thread_guest_vcpu.h"

namespace tern {
namespace {

constexpr StateFormat kFormat{0x545347544e524554 /* "TERNTGST" */, 1, "thread guest state"};
constexpr size_t kVcpuRecord = 5 * 8;

}  // namespace

std::vector<uint8_t> ThreadGuest::save_state() {
  if (!has_workload_ || running_) return {};
  StateWriter w(kFormat, static_cast<uint32_t>(vcpus_.size()), spec_);
  for (auto& v : vcpus_) {
    w.put<uint64_t>(v->rng);
    w.put<uint64_t>(v->cursor);
    w.put<uint64_t>(v->ops.load(std::memory_order_relaxed));
    w.put<uint64_t>(v->writes.load(std::memory_order_relaxed));
    w.put<uint64_t>(v->reads.load(std::memory_order_relaxed));
  }
  // With a heap (the spec says so), its free set follows: one u64 word per 64 target pages.
  if (heap_on())
    for (uint64_t i = 0; i < words_; ++i) w.put<uint64_t>(free_[i].load(std::memory_order_relaxed));
  return std::move(w).finish();
}

Status ThreadGuest::load_state(const std::vector<uint8_t>& state) {
  if (threads_started_)
    return Status(Code::kInvalidArgument, "thread guest: load_state() on a guest that has run");
  auto r = StateReader::open(kFormat, state);
  if (!r) return r.status();
  const bool heap = r->spec().free_pct != 0 || r->spec().reuse_pct != 0;
  const uint64_t want = uint64_t{r->vcpus()} * kVcpuRecord + (heap ? words_ * 8 : 0);
  if (r->left() != want)
    return r->error("expected " + std::to_string(want) + " bytes of vCPU state, got " +
                    std::to_string(r->left()));
  if (Status s = setup_workload(r->spec()); !s) return s;
  for (auto& v : vcpus_) {
    uint64_t rng = 0, cursor = 0, ops = 0, writes = 0, reads = 0;
    (void)(r->get(rng) && r->get(cursor) && r->get(ops) && r->get(writes) && r->get(reads));
    if (rng == 0 || cursor >= v->pages) {
      // The message first: clearing vcpus_ destroys *v.
      Status bad = r->error("vCPU " + std::to_string(v->index) + " progress out of range");
      has_workload_ = false;
      vcpus_.clear();
      return bad;
    }
    v->rng = rng;
    v->cursor = cursor;
    v->ops.store(ops, std::memory_order_relaxed);
    v->writes.store(writes, std::memory_order_relaxed);
    v->reads.store(reads, std::memory_order_relaxed);
  }
  for (uint64_t i = 0; heap && i < words_; ++i) {
    uint64_t f = 0;
    (void)r->get(f);
    if (i + 1 == words_ && target_pages_ % 64) f &= (uint64_t{1} << (target_pages_ % 64)) - 1;
    free_[i].store(f, std::memory_order_relaxed);
    reported_[i].store(0, std::memory_order_relaxed);
  }
  heap_ready_ = heap;
  check_touch_ = true;
  return Status::ok();
}

Status ThreadGuest::prefill() {
  if (!has_workload_) return Status(Code::kUnavailable, "thread guest: no workload to prefill");
  if (running_) return Status(Code::kUnavailable, "thread guest: prefill needs the guest paused");
  heap_init();  // the free share first: prefill writes the pages in use
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
    uint64_t begin, end, mismatches = 0, skipped = 0;
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
    for (uint64_t p = part.begin; p < part.end; ++p) {
      const uint32_t v = page_version(p);
      if (v & kFreeBit) {  // freed by the heap: dead content, not checked
        ++part.skipped;
        continue;
      }
      if (!check_page(page_ptr(p), p, v, part.mismatches ? nullptr : &why) &&
          part.mismatches++ == 0)
        part.first = why;
    }
  };
  std::vector<std::thread> helpers;
  for (uint64_t i = 1; i < parts; ++i) helpers.emplace_back(run, std::ref(work[i]));
  run(work[0]);
  for (auto& t : helpers) t.join();
  uint64_t skipped = 0;
  for (const Part& part : work) {
    if (part.mismatches && rep.mismatches == 0) first = part.first;
    rep.mismatches += part.mismatches;
    skipped += part.skipped;
  }
  rep.pages_checked = n - skipped;
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
