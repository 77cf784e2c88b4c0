// Thread guest: what a vCPU thread does. Everything here runs on a vCPU thread unless noted.
#include <chrono>

#include "vm/page_content.h"
#include "vm/thread_guest.h"
#include "vm/thread_guest_vcpu.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

uint64_t xorshift(uint64_t& s) {
  s ^= s << 13;
  s ^= s >> 7;
  s ^= s << 17;
  return s;
}

uint64_t ns_since(Clock::time_point t0) {
  return static_cast<uint64_t>(
      std::chrono::duration_cast<std::chrono::nanoseconds>(Clock::now() - t0).count());
}

}  // namespace

void ThreadGuest::vcpu_main(Vcpu& v) {
  // Rate limiting: bursts of `burst` writes, then sleep until the next slot, so a rate-limited
  // vCPU costs almost no CPU. Rate 0: bursts back to back (checking pause between bursts).
  const uint64_t rate = spec_.rate;
  const uint64_t burst = rate == 0 ? 64 : std::max<uint64_t>(1, rate / 1000);
  const auto period = std::chrono::nanoseconds(rate ? burst * 1'000'000'000 / rate : 0);
  auto next = Clock::now();
  while (wait_runnable(v)) {
    for (uint64_t i = 0; i < burst; ++i) {
      if (pause_req_.load(std::memory_order_acquire) ||
          v.ops.load(std::memory_order_relaxed) >= stop_at_.load(std::memory_order_acquire))
        break;
      do_op(v);
    }
    if (rate == 0) continue;
    next += period;
    auto now = Clock::now();
    if (next + std::chrono::milliseconds(100) < now) next = now;  // resumed after a pause
    if (next > now) sleep_until(next);
  }
}

bool ThreadGuest::wait_runnable(Vcpu& v) {
  auto runnable = [&] {
    return !pause_req_.load(std::memory_order_acquire) &&
           v.ops.load(std::memory_order_relaxed) < stop_at_.load(std::memory_order_acquire);
  };
  if (runnable()) return true;
  std::unique_lock lk(run_mu_);
  if (exit_) return false;
  if (runnable()) return true;
  v.parked = true;
  ++parked_;
  parked_cv_.notify_all();
  run_cv_.wait(lk, [&] { return exit_ || runnable(); });
  v.parked = false;
  --parked_;
  return !exit_;
}

void ThreadGuest::sleep_until(Clock::time_point deadline) {
  std::unique_lock lk(run_mu_);
  run_cv_.wait_until(lk, deadline,
                     [&] { return exit_ || pause_req_.load(std::memory_order_relaxed); });
}

uint64_t ThreadGuest::next_page(Vcpu& v) {
  uint64_t off = 0;
  switch (spec_.pattern) {
    case Pattern::kSequential:
      off = v.cursor;
      v.cursor = v.cursor + 1 == v.pages ? 0 : v.cursor + 1;
      break;
    case Pattern::kRandom:
      off = xorshift(v.rng) % v.pages;
      break;
    case Pattern::kHotset:
      if (xorshift(v.rng) % 100 < spec_.hot_write_pct)
        off = xorshift(v.rng) % v.hot_pages;
      else
        off = xorshift(v.rng) % v.pages;
      break;
  }
  return v.first_page + off;
}

void ThreadGuest::do_op(Vcpu& v) {
  uint64_t page = next_page(v);
  if (heap_on()) {
    // The heap: some operations reuse or free a page; the others touch a page in use only
    // (the one drawn or the next after it), as a program never touches memory it freed.
    if (!v.reader && spec_.reuse_pct != 0 && xorshift(v.rng) % 100 < spec_.reuse_pct) {
      xorshift(v.rng);
      heap_churn(v, page);
      bump(v.ops);
      return;
    }
    page = find_in_slice(v, page, false);
    if (page == UINT64_MAX) {  // every page of the slice is free: nothing to touch
      bump(v.ops);
      return;
    }
  }
  const bool read = v.reader || (spec_.read_pct != 0 && xorshift(v.rng) % 100 < spec_.read_pct);
  if (check_touch_) check_first_touch(page);
  if (read) {
    // A read touches the page (a fault in postcopy) without changing it.
    std::atomic_ref<uint64_t> w(*reinterpret_cast<uint64_t*>(page_ptr(page)));
    (void)w.load(std::memory_order_relaxed);
    bump(v.reads);
  } else if (heap_on()) {
    write_page(v, page, std::atomic_ref<uint32_t>(table()[page]).load(std::memory_order_relaxed));
  } else {
    // Single writer per page: this vCPU owns `page` and its table entry.
    std::atomic_ref<uint32_t> version(table()[page]);
    uint32_t nv = version.load(std::memory_order_relaxed) + 1;
    if (nv == 0) nv = 1;  // wrapped: 0 is reserved for "never written"
    fill_page(page_ptr(page), page, nv);
    version.store(nv, std::memory_order_release);  // content first, then the record of it
    bump(v.writes);
    if (logging_.load(std::memory_order_acquire)) {
      log_page(v, page);
      log_page(v, page / (kSmallPage / sizeof(uint32_t)));  // the table page just written
    }
  }
  bump(v.ops);
}

void ThreadGuest::log_page(Vcpu& v, uint64_t page) {
  // Already logged and not yet collected: the pending entry covers this write too (see
  // collect_dirty). acq_rel pairs with collect_dirty's clearing exchange.
  if (logged_[page].exchange(1, std::memory_order_acq_rel) != 0) return;
  while (!v.ring.push(0, page)) ring_full_exit(v);
  bump(v.dirty_pushes);
}

void ThreadGuest::ring_full_exit(Vcpu& v) {
  // Like KVM_EXIT_DIRTY_RING_FULL: kick the reaper and wait for it to harvest this ring.
  const auto t0 = Clock::now();
  v.exits.record(t0, v.dirty_pushes.load(std::memory_order_relaxed));
  reap_req_.fetch_add(1, std::memory_order_release);
  reap_req_.notify_one();
  v.ring.wait_not_full();
  bump(v.stall_ns, ns_since(t0));
  // Dirty limit (S4): the vCPU accepts its penalty here. A pause cuts the sleep short.
  if (uint64_t us = v.penalty_us.load(std::memory_order_relaxed); us != 0) {
    const auto t1 = Clock::now();
    sleep_until(t1 + std::chrono::microseconds(us));
    bump(v.penalty_ns, ns_since(t1));
  }
}

void ThreadGuest::check_first_touch(uint64_t page) {
  if (touched_.test_and_set(page)) return;
  // The table entry may fault first (postcopy): it is guest RAM too. The timed part is the
  // touch alone (table entry and one word of the page), so the histogram is what a guest waits.
  const auto t0 = Clock::now();
  const uint32_t version = page_version(page);
  (void)std::atomic_ref<uint64_t>(*reinterpret_cast<uint64_t*>(page_ptr(page)))
      .load(std::memory_order_relaxed);
  touch_latency_.record_ns(ns_since(t0));
  if (version & kFreeBit) return;  // freed: its content is dead (the heap writes it before reuse)
  std::string why;
  const bool ok = check_page(page_ptr(page), page, version, &why);
  touched_checked_.fetch_add(1, std::memory_order_relaxed);
  if (!ok && touched_mismatches_.fetch_add(1, std::memory_order_relaxed) == 0) {
    std::lock_guard lk(touch_mu_);
    touch_first_mismatch_ = "first touch: " + why;
  }
}

}  // namespace tern
