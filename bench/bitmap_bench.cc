// Migration bitmap primitives over a 1 GiB guest of 4 KiB host pages (262144 pages):
//   BM_BitmapScan/dirty_pct:P        find_next_set over the whole bitmap, P% of pages dirty
//   BM_BitmapClaim/threads:T         claim() of every page; with 2 threads both race for every
//                                    page (worst case: the same cache lines), one must win each
//   BM_SchedulerPick/dirty_pct:P/threads:T
//                                    the sender's pick loop (dataplane/engine/sender.cc,
//                                    next_dirty_page): stripes of 16 pages from a shared cursor,
//                                    find_next_set inside the stripe, then claim
// Rates: bytes_per_second counts guest bytes covered (scan) or claimed (claim, pick);
// items_per_second counts host pages. With threads:2 the library divides by the time summed
// over threads, so those are per-thread rates; guest_pages_per_s is the aggregate (guest pages
// covered by all threads per wall-clock second of claiming). Refilling the bitmap between
// iterations is not timed. The memcpy reference is BM_Memcpy in uffd_bench.cc.
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <barrier>
#include <chrono>
#include <cstdint>
#include <memory>
#include <random>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/ram_block.h"

namespace tern {
namespace {

constexpr uint64_t kGuestBytes = uint64_t{1} << 30;
constexpr uint64_t kPages = kGuestBytes / kSmallPage;
constexpr uint64_t kStripe = 16;  // as in dataplane/engine/sender.cc

std::unique_ptr<MigrationBitmap> make_bitmap() {
  return std::make_unique<MigrationBitmap>(std::vector<uint32_t>{kSmallPage},
                                           std::vector<uint64_t>{kGuestBytes});
}

// Marks `pct` percent of the pages dirty, spread at random (fixed seed: same set every run).
void dirty_random(AtomicBitmap& map, int64_t pct) {
  if (pct >= 100) {
    map.set_all();
    return;
  }
  map.clear_all();
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<uint64_t> page(0, kPages - 1);
  const uint64_t want = kPages * static_cast<uint64_t>(pct) / 100;
  for (uint64_t n = 0; n < want;) {
    if (!map.test_and_set(page(rng))) ++n;
  }
}

void BM_BitmapScan(benchmark::State& state) {
  auto bitmap = make_bitmap();
  AtomicBitmap& map = bitmap->block(0);
  dirty_random(map, state.range(0));
  uint64_t found = 0;
  for (auto _ : state) {
    found = 0;
    for (size_t p = map.find_next_set(0); p < map.size(); p = map.find_next_set(p + 1)) ++found;
    benchmark::DoNotOptimize(found);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kGuestBytes));
  state.SetItemsProcessed(static_cast<int64_t>(state.iterations() * kPages));
  state.counters["dirty_pages"] = static_cast<double>(found);
}
BENCHMARK(BM_BitmapScan)->ArgName("dirty_pct")->Arg(1)->Arg(10)->Arg(100);

// State shared by the threads of one multi-threaded run. Thread 0 creates it before the
// benchmark loop (the library holds every thread at the loop start until all arrive) and
// drops it after the loop (every thread has left the loop by then).
struct Shared {
  explicit Shared(int threads) : bitmap(make_bitmap()), sync(threads) {}
  std::unique_ptr<MigrationBitmap> bitmap;
  std::barrier<> sync;
  std::atomic<uint64_t> cursor{0};
  // Thread 0 only: wall time of the claim phases, from the barrier that releases every thread
  // to the one that finds them all done.
  std::chrono::steady_clock::time_point phase_start{};
  std::chrono::duration<double> claim_time{0};
};
Shared* g_shared = nullptr;

// Untimed, between iterations: every thread stops; thread 0 refills the bitmap (a dirty sync)
// and resets the cursor; then all start claiming together.
void refill(benchmark::State& state, Shared& sh, int64_t pct) {
  state.PauseTiming();
  sh.sync.arrive_and_wait();
  if (state.thread_index() == 0) {
    if (sh.phase_start != std::chrono::steady_clock::time_point{})
      sh.claim_time += std::chrono::steady_clock::now() - sh.phase_start;
    dirty_random(sh.bitmap->block(0), pct);
    sh.cursor.store(0, std::memory_order_relaxed);
  }
  sh.sync.arrive_and_wait();
  if (state.thread_index() == 0) sh.phase_start = std::chrono::steady_clock::now();
  state.ResumeTiming();
}

// After the loop (the library's end-of-loop barrier has passed): sets items/bytes for the pages
// this thread won; thread 0 closes the last claim phase, reports the aggregate rate (guest
// pages covered per wall-clock second by all threads) and frees the shared state.
void finish(benchmark::State& state, uint64_t won) {
  state.SetBytesProcessed(static_cast<int64_t>(won * kSmallPage));
  state.SetItemsProcessed(static_cast<int64_t>(won));
  double all = 0;  // counters are summed over threads: only thread 0 contributes
  if (state.thread_index() == 0) {
    Shared& sh = *g_shared;
    sh.claim_time += std::chrono::steady_clock::now() - sh.phase_start;
    all = static_cast<double>(kPages * state.iterations()) / sh.claim_time.count();
    delete g_shared;
    g_shared = nullptr;
  }
  state.counters["guest_pages_per_s"] = all;
}

void BM_BitmapClaim(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new Shared(state.threads());
  uint64_t won = 0;
  for (auto _ : state) {
    Shared& sh = *g_shared;
    refill(state, sh, 100);
    for (uint64_t p = 0; p < kPages; ++p) won += sh.bitmap->claim(0, p);
  }
  // Share of the pages this thread won, averaged over threads: 1/threads when the race is fair.
  state.counters["won_share"] = benchmark::Counter(
      static_cast<double>(won) / static_cast<double>(kPages * state.iterations()),
      benchmark::Counter::kAvgThreads);
  finish(state, won);
}
BENCHMARK(BM_BitmapClaim)->Threads(1)->Threads(2)->UseRealTime();

void BM_SchedulerPick(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new Shared(state.threads());
  uint64_t won = 0;
  for (auto _ : state) {
    Shared& sh = *g_shared;
    refill(state, sh, state.range(0));
    AtomicBitmap& map = sh.bitmap->block(0);
    while (true) {
      const uint64_t start = sh.cursor.fetch_add(kStripe, std::memory_order_relaxed);
      if (start >= kPages) break;
      const uint64_t end = std::min(start + kStripe, kPages);
      for (uint64_t p = map.find_next_set(start); p < end; p = map.find_next_set(p + 1))
        won += sh.bitmap->claim(0, p);
    }
  }
  finish(state, won);
}
BENCHMARK(BM_SchedulerPick)
    ->ArgName("dirty_pct")
    ->Arg(10)
    ->Arg(100)
    ->Threads(1)
    ->Threads(2)
    ->UseRealTime();

}  // namespace
}  // namespace tern
