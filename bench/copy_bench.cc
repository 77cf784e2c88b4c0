// Landing copy: memcpy against the streaming copy (dataplane/page_copy.h) that precopy landing
// uses, in 64 KiB pieces (a chunk) from one 2M-page buffer to another, far larger than the
// caches. The two alternate every 16 MiB inside one iteration, so load on this shared host
// falls on both alike and the ratio stays meaningful.
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <chrono>
#include <cstring>

#include "dataplane/page_copy.h"
#include "dataplane/ram_block.h"

namespace tern {
namespace {

constexpr size_t kBytes = 256u << 20;
constexpr size_t kPiece = 64u << 10;
constexpr size_t kStretch = 16u << 20;

uint8_t* huge_buffer() {
  void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  std::memset(p, 0x5a, kBytes);  // touched: the first touch costs far more than a copy here
  return static_cast<uint8_t*>(p);
}

void BM_LandingCopy2M(benchmark::State& state) {
  if (!reserve_huge_pages(2 * kBytes / kHugePage + 8).is_ok()) {
    state.SkipWithError("cannot reserve hugetlb pages");
    return;
  }
  uint8_t* src = huge_buffer();
  uint8_t* dst = huge_buffer();
  if (!src || !dst) {
    state.SkipWithError("cannot map hugetlb buffers");
    return;
  }
  double t_memcpy = 0, t_stream = 0;
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    for (size_t s = 0; s < kBytes; s += kStretch) {
      const bool stream_first = (s / kStretch) & 1;  // alternate which goes first
      for (int k = 0; k < 2; ++k) {
        const bool stream = (k == 0) == stream_first;
        auto t0 = Clock::now();
        for (size_t off = s; off < s + kStretch; off += kPiece) {
          if (stream)
            copy_streaming(dst + off, src + off, kPiece);
          else
            std::memcpy(dst + off, src + off, kPiece);
        }
        benchmark::ClobberMemory();
        (stream ? t_stream : t_memcpy) += std::chrono::duration<double>(Clock::now() - t0).count();
      }
    }
  }
  const double bytes = static_cast<double>(state.iterations() * kBytes);
  state.counters["memcpy_GBps"] = bytes / t_memcpy / 1e9;
  state.counters["stream_GBps"] = bytes / t_stream / 1e9;
  state.counters["ratio"] = t_memcpy / t_stream;
  munmap(src, kBytes);
  munmap(dst, kBytes);
}

BENCHMARK(BM_LandingCopy2M)->Unit(benchmark::kMillisecond)->Iterations(4);

}  // namespace
}  // namespace tern
