// Thread guest: the heap (WorkloadSpec free=, reuse=) and its free page reporting (S5).
//
// Why a reported page is never lost (the contract of Guest::take_free_pages): a vCPU that
// reuses page p clears p's reported_ bit (acq_rel) before it writes p, and logs the write after
// it. A take that finds p's bit set read it before that clear, so the write follows the take:
// the collect_dirty that follows the take, or a later one, reports it (no collect before the
// take can have seen it: the clear would then happen-before the take's exchange, which would
// have read it). So the engine may clear every reported page from its migration bitmap, then
// apply the dirty log.
#include <algorithm>

#include "vm/page_content.h"
#include "vm/thread_guest.h"
#include "vm/thread_guest_vcpu.h"

namespace tern {
namespace {

uint64_t unit_hash(uint64_t seed, uint64_t unit) {
  uint64_t x = seed * 0x9e3779b97f4a7c15 + unit + 1;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

uint64_t bit(uint64_t page) { return uint64_t{1} << (page % 64); }

}  // namespace

bool ThreadGuest::page_free(uint64_t page) const {
  return free_[page / 64].load(std::memory_order_acquire) & bit(page);
}

uint64_t ThreadGuest::free_pages() const {
  uint64_t n = 0;
  for (uint64_t w = 0; w < words_; ++w)
    n += static_cast<uint64_t>(__builtin_popcountll(free_[w].load(std::memory_order_relaxed)));
  return n;
}

void ThreadGuest::mark_free(uint64_t page, bool free) {
  if (free) {
    free_[page / 64].fetch_or(bit(page), std::memory_order_acq_rel);
    reported_[page / 64].fetch_or(bit(page), std::memory_order_acq_rel);
  } else {
    // free_ first (start_free_page_reporting relies on it), then reported_, before the write.
    free_[page / 64].fetch_and(~bit(page), std::memory_order_acq_rel);
    reported_[page / 64].fetch_and(~bit(page), std::memory_order_acq_rel);
  }
}

// Frees host-page units that lie wholly inside one vCPU's slice (a page has one writer), each
// with probability free_pct (a hash of seed and unit: the same spec frees the same pages). A
// unit's pages get version 1 first if they were never written: the heap used them, then freed
// them, so their content is there to be skipped.
void ThreadGuest::heap_init() {
  if (heap_ready_ || !heap_on()) return;
  heap_ready_ = true;
  const uint64_t unit = spec_.page_size / kSmallPage;
  std::lock_guard lk(harvest_mu_);  // with a migration's log on, the writes go to pending_
  auto log = [&](uint64_t p) {
    if (migration_log_) pending_[p / 64] |= bit(p);
  };
  for (auto& v : vcpus_) {
    const uint64_t first = (v->first_page + unit - 1) / unit, end = (v->first_page + v->pages) / unit;
    for (uint64_t u = first; u < end; ++u) {
      if (unit_hash(spec_.seed, u) % 100 >= spec_.free_pct) continue;
      for (uint64_t p = u * unit; p < (u + 1) * unit; ++p) {
        std::atomic_ref<uint32_t> entry(table()[p]);
        uint32_t e = entry.load(std::memory_order_relaxed);
        if (e == 0) {
          fill_page(page_ptr(p), p, 1);
          e = 1;
          log(p);
        }
        entry.store(e | kFreeBit, std::memory_order_release);
        log(p / (kSmallPage / sizeof(uint32_t)));
        mark_free(p, true);
      }
    }
  }
}

uint64_t ThreadGuest::find_in_slice(const Vcpu& v, uint64_t from, bool want_free) const {
  const uint64_t begin = v.first_page, end = v.first_page + v.pages;
  uint64_t p = from;
  for (uint64_t scanned = 0; scanned < v.pages;) {
    // One word of free_ at a time, masked to [p, end).
    uint64_t w = free_[p / 64].load(std::memory_order_relaxed);
    if (!want_free) w = ~w;
    w &= ~uint64_t{0} << (p % 64);
    const uint64_t word_end = std::min(end, (p / 64 + 1) * 64);
    if (word_end % 64) w &= (uint64_t{1} << (word_end % 64)) - 1;
    if (w) return (p / 64) * 64 + static_cast<uint64_t>(__builtin_ctzll(w));
    scanned += word_end - p;
    p = word_end == end ? begin : word_end;
  }
  return UINT64_MAX;
}

void ThreadGuest::write_page(Vcpu& v, uint64_t page, uint32_t entry) {
  uint32_t nv = (entry & kVersionMask) + 1;
  if (nv > kVersionMask) nv = 1;  // wrapped: 0 is reserved for "never written"
  if (entry & kFreeBit) {
    mark_free(page, false);  // reported_ first: see the top of this file
    bump(v.reuses);
  }
  fill_page(page_ptr(page), page, nv);
  std::atomic_ref<uint32_t>(table()[page]).store(nv, std::memory_order_release);
  bump(v.writes);
  if (logging_.load(std::memory_order_acquire)) {
    log_page(v, page);
    log_page(v, page / (kSmallPage / sizeof(uint32_t)));  // the table page just written
  }
}

void ThreadGuest::free_page(Vcpu& v, uint64_t page, uint32_t entry) {
  // The table records the free first: a destination that holds the table page knows the page's
  // content is dead even if the page itself is never sent again.
  std::atomic_ref<uint32_t>(table()[page]).store(entry | kFreeBit, std::memory_order_release);
  if (logging_.load(std::memory_order_acquire))
    log_page(v, page / (kSmallPage / sizeof(uint32_t)));
  mark_free(page, true);
  bump(v.frees);
}

void ThreadGuest::heap_churn(Vcpu& v, uint64_t page) {
  const bool reuse = v.rng & 1;  // xorshift state: one coin per churn
  const uint64_t p = find_in_slice(v, page, reuse);
  if (p == UINT64_MAX) return;
  if (check_touch_) check_first_touch(p);
  const uint32_t entry = std::atomic_ref<uint32_t>(table()[p]).load(std::memory_order_relaxed);
  if (reuse)
    write_page(v, p, entry);
  else
    free_page(v, p, entry);
}

// Every page free now goes back into the report (a new migration learns the whole free set).
// A vCPU that reuses page p meanwhile clears free_ then reported_; if this call's fetch_or comes
// after that clear of reported_, the clear of free_ happens-before the second look, which then
// sees p in use and takes it out again. So the report never holds a page written since it was
// last freed (a page freed again meanwhile may be left out: a missed hint, never a lost page).
Status ThreadGuest::start_free_page_reporting() {
  for (uint64_t w = 0; w < words_; ++w) {
    const uint64_t f = free_[w].load(std::memory_order_acquire);
    if (!f) continue;
    reported_[w].fetch_or(f, std::memory_order_acq_rel);
    const uint64_t still = free_[w].load(std::memory_order_acquire);
    if (f & ~still) reported_[w].fetch_and(~(f & ~still), std::memory_order_acq_rel);
  }
  reporting_.store(true, std::memory_order_release);
  return Status::ok();
}

uint64_t ThreadGuest::take_free_pages(std::vector<Range>& out) {
  if (!reporting_.load(std::memory_order_acquire)) return 0;
  uint64_t n = 0;
  for (uint64_t w = 0; w < words_; ++w) {
    uint64_t bits = reported_[w].load(std::memory_order_relaxed);
    if (!bits) continue;
    bits = reported_[w].exchange(0, std::memory_order_acq_rel);
    for (; bits; bits &= bits - 1) {
      const uint64_t p = w * 64 + static_cast<uint64_t>(__builtin_ctzll(bits));
      ++n;
      if (!out.empty() && out.back().block == 0 && out.back().offset + out.back().length ==
                                                       p * kSmallPage)
        out.back().length += kSmallPage;
      else
        out.push_back({0, p * kSmallPage, kSmallPage});
    }
  }
  return n;
}

void ThreadGuest::stop_free_page_reporting() {
  reporting_.store(false, std::memory_order_release);
}

}  // namespace tern
