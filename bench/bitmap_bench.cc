// Migration bitmap primitives over a 1 GiB guest of 4 KiB host pages (262144 pages):
//   BM_BitmapScan/dirty_pct:P        find_next_set over the whole bitmap, P% of pages dirty
//   BM_BitmapClaim/threads:T         claim() of every page; with 2 threads both race for every
//                                    page (worst case: the same cache lines), one must win each
//   BM_SchedulerPick/dirty_pct:P/threads:T
//                                    the sender's pick loop (dataplane/engine/sender.cc,
//                                    next_dirty_page): 1 MiB stripes of pages from a shared
//                                    cursor, find_next_set inside the stripe, then claim
// Rates: bytes_per_second counts guest bytes covered (scan) or claimed (claim, pick);
// items_per_second counts host pages. Claim and pick time each thread's claim loop by wall
// clock (manual time; refilling the bitmap between iterations is not timed). With threads:2,
// Google Benchmark reports Time as wall time per iteration divided by the thread count and the
// rates as totals over all threads (aggregate throughput). The memcpy reference is BM_Memcpy in uffd_bench.cc.
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
constexpr uint64_t kStripe = (1u << 20) / kSmallPage;  // the sender's 1 MiB stripe

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
};
Shared* g_shared = nullptr;

// Between iterations (not timed: these benchmarks use manual time): every thread stops; thread 0
// refills the bitmap (a dirty sync) and resets the cursor; then all start claiming together.
// Returns when this thread's claim phase starts.
std::chrono::steady_clock::time_point refill(benchmark::State& state, Shared& sh, int64_t pct) {
  sh.sync.arrive_and_wait();
  if (state.thread_index() == 0) {
    dirty_random(sh.bitmap->block(0), pct);
    sh.cursor.store(0, std::memory_order_relaxed);
  }
  sh.sync.arrive_and_wait();
  return std::chrono::steady_clock::now();
}

// Iteration time: from the common start until every thread has finished claiming (a thread that
// runs out of pages early must not make the round look shorter).
void set_time(benchmark::State& state, Shared& sh, std::chrono::steady_clock::time_point start) {
  sh.sync.arrive_and_wait();
  state.SetIterationTime(
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

// After the loop (every thread has left it): the pages this thread won; thread 0 frees the
// shared state.
void finish(benchmark::State& state, uint64_t won) {
  state.SetBytesProcessed(static_cast<int64_t>(won * kSmallPage));
  state.SetItemsProcessed(static_cast<int64_t>(won));
  if (state.thread_index() == 0) {
    delete g_shared;
    g_shared = nullptr;
  }
}

void BM_BitmapClaim(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new Shared(state.threads());
  uint64_t won = 0;
  for (auto _ : state) {
    Shared& sh = *g_shared;
    const auto start = refill(state, sh, 100);
    for (uint64_t p = 0; p < kPages; ++p) won += sh.bitmap->claim(0, p);
    set_time(state, sh, start);
  }
  // Share of the pages this thread won, averaged over threads: 1/threads when the race is fair.
  state.counters["won_share"] = benchmark::Counter(
      static_cast<double>(won) / static_cast<double>(kPages * state.iterations()),
      benchmark::Counter::kAvgThreads);
  finish(state, won);
}
BENCHMARK(BM_BitmapClaim)->Threads(1)->Threads(2)->UseManualTime();

void BM_SchedulerPick(benchmark::State& state) {
  if (state.thread_index() == 0) g_shared = new Shared(state.threads());
  uint64_t won = 0;
  for (auto _ : state) {
    Shared& sh = *g_shared;
    const auto start = refill(state, sh, state.range(0));
    AtomicBitmap& map = sh.bitmap->block(0);
    while (true) {
      const uint64_t start = sh.cursor.fetch_add(kStripe, std::memory_order_relaxed);
      if (start >= kPages) break;
      const uint64_t end = std::min(start + kStripe, kPages);
      for (uint64_t p = map.find_next_set(start); p < end; p = map.find_next_set(p + 1))
        won += sh.bitmap->claim(0, p);
    }
    set_time(state, sh, start);
  }
  finish(state, won);
}
BENCHMARK(BM_SchedulerPick)
    ->ArgName("dirty_pct")
    ->Arg(10)
    ->Arg(100)
    ->Threads(1)
    ->Threads(2)
    ->UseManualTime();

}  // namespace
}  // namespace tern
