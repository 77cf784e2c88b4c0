// The memcpy each bulk round is compared with, and how the per-round ratios are reported; used
// by the dpdk benchmarks and BM_CrossCoreRing so their vs_memcpy counters mean the same thing.
#pragma once

#include <benchmark/benchmark.h>

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <vector>

namespace tern {

// memcpy of `bytes` in `piece`-sized calls, as BM_Memcpy copies pages (one 32 MiB call would
// take glibc's non-temporal path, a different reference).
inline void memcpy_pieces(uint8_t* dst, const uint8_t* src, size_t bytes, size_t piece) {
  for (size_t off = 0; off < bytes; off += piece) std::memcpy(dst + off, src + off, piece);
}

// Per-round ratios (reference memcpy time / transfer time) as the vs_memcpy counters: median,
// min and max.
inline void report_ratios(benchmark::State& state, std::vector<double> ratio) {
  if (ratio.empty()) return;
  std::sort(ratio.begin(), ratio.end());
  state.counters["vs_memcpy"] = ratio[ratio.size() / 2];
  state.counters["vs_memcpy_min"] = ratio.front();
  state.counters["vs_memcpy_max"] = ratio.back();
}

}  // namespace tern
