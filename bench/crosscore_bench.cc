// The host's reference for any two-thread pipeline through shared memory, tern's or not: a
// producer thread copies a 32 MiB source in 8 KiB pieces into a ring of 512 slots (as memif's
// transmit copies a segment into its ring), and the benchmark thread copies each piece out to a
// 32 MiB destination with streaming stores (as a receiver lands pages in guest RAM). No
// protocol, no headers, no checksums: what two cores of this host move when the only work is
// one hand-off. Both ends yield when idle, as BM_DpdkBulkThreads does. vs_memcpy: median of
// per-round ratios to a memcpy of the same bytes (2 MiB at a time) right after the round.
// On the 2-vCPU VMs this project runs on, cross-core bandwidth drops ~5x for seconds at a time
// (the host, not tern: this benchmark drops with it), so scripts/bench-dpdk.sh prints it beside
// the dpdk pipeline.
#include <benchmark/benchmark.h>
#include <sched.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>
#include <vector>

#include "bench/memcpy_reference.h"
#include "dataplane/page_copy.h"

namespace tern {
namespace {

constexpr size_t kBytes = 32u << 20, kPiece = 8192, kSlots = 512, kPageBytes = 2u << 20;

void BM_CrossCoreRing(benchmark::State& state) {
  static std::vector<uint8_t> src(kBytes, 0x5a), dst(kBytes, 0), scratch(kBytes, 0);
  static std::vector<uint8_t> ring(kSlots * kPiece, 0);
  // head: pieces the producer has written; tail: pieces the consumer has taken. A round is
  // kBytes / kPiece pieces; rounds is bumped by the consumer to start one (~0 stops).
  alignas(64) std::atomic<uint64_t> head{0};
  alignas(64) std::atomic<uint64_t> tail{0};
  std::atomic<uint64_t> rounds{0};
  constexpr uint64_t kPieces = kBytes / kPiece;
  std::thread producer([&] {
    uint64_t h = 0;
    for (uint64_t round = 1;; ++round) {
      rounds.wait(round - 1);
      if (rounds.load() == ~uint64_t{0}) return;
      for (uint64_t i = 0; i < kPieces; ++i, ++h) {
        while (h - tail.load(std::memory_order_acquire) >= kSlots) sched_yield();
        std::memcpy(&ring[(h % kSlots) * kPiece], &src[i * kPiece], kPiece);
        head.store(h + 1, std::memory_order_release);
      }
    }
  });
  using Clock = std::chrono::steady_clock;
  std::vector<double> ratio;
  uint64_t t = 0;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    rounds.fetch_add(1);
    rounds.notify_one();
    for (uint64_t i = 0; i < kPieces; ++i, ++t) {
      while (head.load(std::memory_order_acquire) == t) sched_yield();
      copy_streaming_unfenced(&dst[i * kPiece], &ring[(t % kSlots) * kPiece], kPiece);
      tail.store(t + 1, std::memory_order_release);
    }
    streaming_fence();
    const auto t1 = Clock::now();
    state.PauseTiming();
    memcpy_pieces(scratch.data(), src.data(), kBytes, kPageBytes);
    benchmark::DoNotOptimize(scratch.data());
    const auto t2 = Clock::now();
    state.ResumeTiming();
    ratio.push_back(std::chrono::duration<double>(t2 - t1).count() /
                    std::chrono::duration<double>(t1 - t0).count());
  }
  rounds.store(~uint64_t{0});
  rounds.notify_one();
  producer.join();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBytes));
  report_ratios(state, std::move(ratio));
}

BENCHMARK(BM_CrossCoreRing)->Unit(benchmark::kMillisecond)->UseRealTime();

}  // namespace
}  // namespace tern
