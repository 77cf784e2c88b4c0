// Reference figure for tern's latency benchmarks: the bare userfaultfd fault round trip with
// no transport in between. Other benchmarks call measure_bare_uffd_faults() to report their
// postcopy fault latency side by side with (and as a ratio of) this floor.
// Header-only so any bench binary can use it; bench code only, never linked into libtern.
#pragma once

#include <poll.h>
#include <pthread.h>
#include <sched.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/ram_block.h"
#include "dataplane/uffd.h"

namespace tern {

struct FaultLatency {
  double p50_us = 0;
  double p99_us = 0;
  int samples = 0;
  std::string error;  // empty on success; else why nothing was measured
  bool ok() const { return error.empty(); }
};

namespace uffd_reference_detail {

// Pins the calling thread to the index-th CPU the process may run on; no-op with one CPU.
inline void pin_to_nth_allowed_cpu(int index) {
  cpu_set_t allowed;
  if (sched_getaffinity(0, sizeof(allowed), &allowed) != 0 || CPU_COUNT(&allowed) < 2) return;
  for (int cpu = 0, seen = 0; cpu < CPU_SETSIZE; ++cpu) {
    if (!CPU_ISSET(cpu, &allowed)) continue;
    if (seen++ == index) {
      cpu_set_t one;
      CPU_ZERO(&one);
      CPU_SET(cpu, &one);
      pthread_setaffinity_np(pthread_self(), sizeof(one), &one);
      return;
    }
  }
}

inline double percentile_us(std::vector<double>& ns, double q) {
  size_t i = std::min(ns.size() - 1, static_cast<size_t>(q * static_cast<double>(ns.size())));
  std::nth_element(ns.begin(), ns.begin() + static_cast<ptrdiff_t>(i), ns.end());
  return ns[i] / 1000.0;
}

}  // namespace uffd_reference_detail

// Measures n faults, each on a fresh (missing) host page of `page_size` (4 KiB anonymous, or
// 2 MiB hugetlb: reserve the pool first, 16 pages): a toucher thread reads one byte and
// times the read; a handler thread takes the fault from read_faults() and resolves it with
// Userfault::copy() of the whole host page. spinning_handler: the handler polls read_faults() without sleeping (the
// poll-mode design); otherwise it blocks in poll(2) on the userfaultfd between faults.
// With two or more allowed CPUs, toucher and handler are pinned to different ones.
// Control path (allocates, spawns threads): call it outside timed regions.
inline FaultLatency measure_bare_uffd_faults(int n, bool spinning_handler,
                                            uint32_t page_size = kSmallPage) {
  namespace d = uffd_reference_detail;
  FaultLatency out;
  if (n <= 0) {
    out.error = "n must be positive";
    return out;
  }
  auto uffd = Userfault::open();
  if (!uffd) {
    out.error = uffd.status().to_string();
    return out;
  }
  constexpr int kWarmup = 32;
  // 16 MiB of 4 KiB pages or 32 MiB of 2 MiB pages, discarded and reused when exhausted.
  const uint64_t kPages = page_size == kSmallPage ? 4096 : 16;
  auto block = RamBlock::create("uffd_reference", kPages * page_size, page_size);
  if (!block) {
    out.error = block.status().to_string();
    return out;
  }
  RamBlock& b = *block.value();
  Userfault& u = *uffd.value();
  if (Status s = u.register_range(b.base(), b.size(), page_size); !s) {
    out.error = s.to_string();
    return out;
  }

  // The page the handler copies from (page-aligned: UFFDIO_COPY's source needs no more).
  std::vector<uint8_t> src_bytes(page_size + kSmallPage, uint8_t{0xab});
  const uint8_t* src = src_bytes.data() + (kSmallPage - reinterpret_cast<uintptr_t>(src_bytes.data()) % kSmallPage) % kSmallPage;
  std::atomic<bool> stop{false};
  std::atomic<int> handler_errors{0};
  std::thread handler([&] {
    d::pin_to_nth_allowed_cpu(1);
    // On a failure the range is unregistered, which releases the toucher (it then reads zero
    // pages) so that the measurement ends with an error instead of hanging.
    auto give_up = [&] {
      if (handler_errors.fetch_add(1) == 0) (void)u.unregister_range(b.base(), b.size());
    };
    uint64_t addrs[16];
    while (!stop.load(std::memory_order_relaxed)) {
      int got = u.read_faults(addrs, 16);
      if (got < 0) give_up();
      for (int i = 0; i < got; ++i) {
        auto* page = reinterpret_cast<void*>(addrs[i] & ~(uint64_t{page_size} - 1));
        int r = u.copy(page, src, page_size);
        if (r != 0 && r != -EEXIST) give_up();
      }
      if (got == 0 && !spinning_handler) {
        pollfd p{u.fd(), POLLIN, 0};
        poll(&p, 1, 10);  // the timeout only bounds how late `stop` is seen
      }
    }
  });

  std::vector<double> ns(static_cast<size_t>(n));
  std::thread toucher([&] {
    d::pin_to_nth_allowed_cpu(0);
    uint64_t page = 0;
    for (int i = 0; i < kWarmup + n; ++i) {
      if (page == kPages) {
        if (!b.discard(0, b.size())) handler_errors.fetch_add(1);  // missing again
        page = 0;
      }
      const auto* p = reinterpret_cast<const volatile uint8_t*>(b.base() + page++ * page_size);
      auto t0 = std::chrono::steady_clock::now();
      (void)*p;
      auto t1 = std::chrono::steady_clock::now();
      if (i >= kWarmup)
        ns[static_cast<size_t>(i - kWarmup)] = static_cast<double>(
            std::chrono::duration_cast<std::chrono::nanoseconds>(t1 - t0).count());
    }
  });
  toucher.join();
  stop.store(true);
  handler.join();

  if (handler_errors.load() != 0) {
    out.error = "the fault handler failed to place pages";
    return out;
  }
  out.samples = n;
  out.p50_us = d::percentile_us(ns, 0.50);
  out.p99_us = d::percentile_us(ns, 0.99);
  return out;
}

}  // namespace tern
