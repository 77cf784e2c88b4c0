// Reference figures for postcopy placement on this machine (design section 8):
//   BM_Memcpy/{4096,2097152}            memcpy of cache-cold, already-mapped pages
//   BM_UffdCopy4K, BM_UffdCopy2MHugetlb  UFFDIO_COPY of one whole host page per iteration
//   BM_UffdCopy2MInto4KPages            the same 2 MiB into 4 KiB memory (512 small copies)
//   BM_PagePlacement/{anon_copy,memfd_copy,memfd_continue}_{4K,2M}  one received host page put
//                                       in place as postcopy does it: copied from a staging page
//                                       with UFFDIO_COPY (anonymous or memfd RAM), or written
//                                       into the page cache through a second mapping and installed
//                                       with UFFDIO_CONTINUE (zero-copy); CPU time per page
//   BM_BareUffdFault/spinning:{1,0}      fault round trip, p50/p99 in microseconds
//   BM_BareUffdFault2M                   the same for a 2 MiB hugetlb page (spinning handler)
#include <benchmark/benchmark.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "bench/uffd_reference.h"
#include "dataplane/page_cache_view.h"
#include "dataplane/ram_block.h"
#include "dataplane/uffd.h"

namespace tern {
namespace {

// Larger than the last-level cache (32 MiB here), so each copy reads and writes cold lines.
constexpr size_t kPoolBytes = 128u << 20;
constexpr uint64_t kBenchHugePages = 16;  // a block of 8 plus slack; never more than 64

// Anonymous, pre-faulted memory (2 MiB aligned, THP where allowed) for copy sources.
class Pool {
 public:
  explicit Pool(size_t bytes) : bytes_(bytes) {
    void* p = mmap(nullptr, bytes + kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                   -1, 0);
    if (p == MAP_FAILED) return;
    raw_ = static_cast<uint8_t*>(p);
    base_ = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw_) + kHugePage - 1) &
                                       ~uintptr_t{kHugePage - 1});
    madvise(base_, bytes, MADV_HUGEPAGE);
    for (size_t i = 0; i < bytes; i += 64) base_[i] = static_cast<uint8_t>(i >> 12);
  }
  ~Pool() {
    if (raw_ != nullptr) munmap(raw_, bytes_ + kHugePage);
  }
  uint8_t* base() const { return base_; }
  size_t bytes() const { return bytes_; }

 private:
  size_t bytes_;
  uint8_t* raw_ = nullptr;
  uint8_t* base_ = nullptr;
};

void set_per_op(benchmark::State& state, uint64_t bytes_per_op) {
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * bytes_per_op));
  state.counters["s_per_op"] =
      benchmark::Counter(static_cast<double>(state.iterations()),
                         benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}

void BM_Memcpy(benchmark::State& state) {
  const size_t len = static_cast<size_t>(state.range(0));
  Pool src(kPoolBytes), dst(kPoolBytes);
  if (src.base() == nullptr || dst.base() == nullptr) {
    state.SkipWithError("cannot map the copy pools");
    return;
  }
  const size_t slots = kPoolBytes / len;
  size_t i = 0;
  for (auto _ : state) {
    // Different slots for source and destination so neither stays cached between passes.
    std::memcpy(dst.base() + ((i + slots / 2) % slots) * len, src.base() + (i % slots) * len, len);
    benchmark::ClobberMemory();
    ++i;
  }
  set_per_op(state, len);
}
BENCHMARK(BM_Memcpy)->Arg(4096)->Arg(2 << 20);

// Before placement number i into a block of `slots` host pages: when the block is full, empties
// it (RamBlock::discard, untimed) so that every placement lands on a missing page. False (and
// the benchmark skipped) if that fails.
bool empty_when_full(benchmark::State& state, RamBlock& b, uint64_t i, uint64_t slots) {
  if (i % slots != 0 || i == 0) return true;
  state.PauseTiming();
  const bool discarded = b.discard(0, b.size()).is_ok();
  state.ResumeTiming();
  if (!discarded) state.SkipWithError("discarding the full block failed");
  return discarded;
}

// UFFDIO_COPY of one host page per iteration into a registered block; when the block is full
// it is discarded (MADV_DONTNEED, untimed) so every copy lands on a missing page.
void uffd_copy_bench(benchmark::State& state, uint32_t block_page, uint64_t block_bytes,
                     size_t copy_len) {
  auto uffd = Userfault::open();
  if (!uffd) {
    state.SkipWithError(uffd.status().to_string().c_str());
    return;
  }
  if (block_page == kHugePage) {
    auto r = reserve_huge_pages(kBenchHugePages);
    if (!r) {
      state.SkipWithError(("hugetlb pages unavailable: " + r.status().to_string()).c_str());
      return;
    }
  }
  auto block = RamBlock::create("uffd_bench", block_bytes, block_page);
  if (!block) {
    state.SkipWithError(block.status().to_string().c_str());
    return;
  }
  RamBlock& b = *block.value();
  if (Status s = uffd.value()->register_range(b.base(), b.size(), block_page); !s) {
    state.SkipWithError(s.to_string().c_str());
    return;
  }
  Pool src(kPoolBytes);
  if (src.base() == nullptr) {
    state.SkipWithError("cannot map the source pool");
    return;
  }
  const uint64_t slots = block_bytes / copy_len;
  const uint64_t src_slots = kPoolBytes / copy_len;
  uint64_t i = 0;
  for (auto _ : state) {
    if (!empty_when_full(state, b, i, slots)) break;
    int r = uffd.value()->copy(b.base() + (i % slots) * copy_len,
                               src.base() + (i % src_slots) * copy_len, copy_len);
    if (r != 0) {
      state.SkipWithError(("UFFDIO_COPY failed: " + std::string(std::strerror(-r))).c_str());
      break;
    }
    ++i;
  }
  set_per_op(state, copy_len);
}

// One received host page per iteration, from a cold source pool: memcpy into a staging page
// and UFFDIO_COPY, or (page_cache) memcpy through tern's own mapping of the memfd, which faults
// the page into the page cache, and UFFDIO_CONTINUE. A full block is emptied (untimed).
void placement_bench(benchmark::State& state, RamBacking backing, uint32_t page, bool page_cache) {
  auto uffd = Userfault::open();
  if (!uffd) return state.SkipWithError(uffd.status().to_string().c_str());
  if (page == kHugePage)
    if (auto r = reserve_huge_pages(kBenchHugePages); !r)
      return state.SkipWithError(("hugetlb pages unavailable: " + r.status().to_string()).c_str());
  if (page_cache)
    if (std::string why = (*uffd)->minor_faults_missing(page); !why.empty())
      return state.SkipWithError(why.c_str());
  const uint64_t block_bytes = page == kHugePage ? 8 * uint64_t{kHugePage} : 32u << 20;
  auto block = RamBlock::create("placement_bench", block_bytes, page, backing);
  if (!block) return state.SkipWithError(block.status().to_string().c_str());
  RamBlock& b = **block;
  std::unique_ptr<PageCacheView> view;
  if (page_cache) {
    auto v = PageCacheView::map(b);
    if (!v) return state.SkipWithError(v.status().to_string().c_str());
    view = std::move(*v);
  }
  if (Status s = (*uffd)->register_range(b.base(), b.size(), page, page_cache); !s)
    return state.SkipWithError(s.to_string().c_str());
  Pool src(kPoolBytes);
  std::vector<uint8_t> staging(page);
  if (src.base() == nullptr) return state.SkipWithError("cannot map the source pool");
  const uint64_t slots = block_bytes / page, src_slots = kPoolBytes / page;
  uint64_t i = 0;
  for (auto _ : state) {
    if (!empty_when_full(state, b, i, slots)) return;
    const uint64_t off = (i % slots) * page;
    const uint8_t* from = src.base() + (i % src_slots) * page;
    int r;
    if (page_cache) {
      std::memcpy(view->base() + off, from, page);
      r = (*uffd)->install(b.base() + off, page);
    } else {
      std::memcpy(staging.data(), from, page);
      r = (*uffd)->copy(b.base() + off, staging.data(), page);
    }
    if (r != 0) return state.SkipWithError(("placement failed: " + std::string(std::strerror(-r))).c_str());
    ++i;
  }
  set_per_op(state, page);
}
BENCHMARK_CAPTURE(placement_bench, anon_copy_4K, RamBacking::kAnonymous, kSmallPage, false)
    ->Name("BM_PagePlacement/anon_copy_4K");
BENCHMARK_CAPTURE(placement_bench, memfd_copy_4K, RamBacking::kMemfd, kSmallPage, false)
    ->Name("BM_PagePlacement/memfd_copy_4K");
BENCHMARK_CAPTURE(placement_bench, memfd_continue_4K, RamBacking::kMemfd, kSmallPage, true)
    ->Name("BM_PagePlacement/memfd_continue_4K");
BENCHMARK_CAPTURE(placement_bench, anon_copy_2M, RamBacking::kAnonymous, kHugePage, false)
    ->Name("BM_PagePlacement/anon_copy_2M");
BENCHMARK_CAPTURE(placement_bench, memfd_copy_2M, RamBacking::kMemfd, kHugePage, false)
    ->Name("BM_PagePlacement/memfd_copy_2M");
BENCHMARK_CAPTURE(placement_bench, memfd_continue_2M, RamBacking::kMemfd, kHugePage, true)
    ->Name("BM_PagePlacement/memfd_continue_2M");

void BM_UffdCopy4K(benchmark::State& state) {
  uffd_copy_bench(state, kSmallPage, 32u << 20, kSmallPage);
}
BENCHMARK(BM_UffdCopy4K);

void BM_UffdCopy2MHugetlb(benchmark::State& state) {
  uffd_copy_bench(state, kHugePage, 8 * uint64_t{kHugePage}, kHugePage);
}
BENCHMARK(BM_UffdCopy2MHugetlb);

void BM_UffdCopy2MInto4KPages(benchmark::State& state) {
  uffd_copy_bench(state, kSmallPage, 32u << 20, kHugePage);
}
BENCHMARK(BM_UffdCopy2MInto4KPages);

// Reports a fault-latency measurement as counters, or skips with its error.
void report_faults(benchmark::State& state, const FaultLatency& f) {
  if (!f.ok()) {
    state.SkipWithError(f.error.c_str());
    return;
  }
  state.counters["p50_us"] = f.p50_us;
  state.counters["p99_us"] = f.p99_us;
  state.counters["faults"] = f.samples;
}

// One iteration = 2000 faults; the latency distribution is reported as counters.
void BM_BareUffdFault(benchmark::State& state) {
  const bool spinning = state.range(0) != 0;
  FaultLatency f;
  for (auto _ : state) f = measure_bare_uffd_faults(2000, spinning);
  report_faults(state, f);
}
BENCHMARK(BM_BareUffdFault)
    ->ArgName("spinning")
    ->Arg(1)
    ->Arg(0)
    ->Iterations(1)
    ->UseRealTime()
    ->Unit(benchmark::kMillisecond);

// The same round trip for a 2 MiB hugetlb page: the floor for 2M postcopy faults (a whole huge
// page is installed at once, S2), spinning handler.
void BM_BareUffdFault2M(benchmark::State& state) {
  if (auto r = reserve_huge_pages(kBenchHugePages); !r) {
    state.SkipWithError(r.status().to_string().c_str());
    return;
  }
  FaultLatency f;
  for (auto _ : state) f = measure_bare_uffd_faults(500, true, kHugePage);
  report_faults(state, f);
}
BENCHMARK(BM_BareUffdFault2M)->Iterations(1)->UseRealTime()->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tern

// main() comes from libbenchmark_main (bench/meson.build).
