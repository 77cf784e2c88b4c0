// Latency histogram with power-of-two microsecond buckets: bucket i counts samples in
// [2^(i-1), 2^i) us, bucket 0 counts samples below 1 us. Lock-free; record() from any thread.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <vector>

namespace tern {

class LatencyHistogram {
 public:
  static constexpr int kBuckets = 32;  // up to ~35 minutes

  void record_ns(uint64_t ns) {
    uint64_t us = ns / 1000;
    int b = us == 0 ? 0 : 64 - __builtin_clzll(us);
    if (b >= kBuckets) b = kBuckets - 1;
    counts_[b].fetch_add(1, std::memory_order_relaxed);
    sum_ns_.fetch_add(ns, std::memory_order_relaxed);
    uint64_t m = max_ns_.load(std::memory_order_relaxed);
    while (ns > m && !max_ns_.compare_exchange_weak(m, ns, std::memory_order_relaxed)) {
    }
  }

  struct Snapshot {
    std::array<uint64_t, kBuckets> counts{};
    uint64_t total = 0;
    uint64_t sum_ns = 0;
    uint64_t max_ns = 0;
    // Upper bound (us) of the bucket holding quantile q in (0,1]; 0 when empty.
    uint64_t quantile_us(double q) const;
    // Quantile q estimated inside its bucket, assuming samples spread evenly over it (as
    // Prometheus' histogram_quantile does), capped at the largest sample; 0 when empty. For
    // benchmarks that compare with an exact reference: the bucket bound alone is off by up to 2x.
    double interpolated_quantile_us(double q) const;
    static uint64_t bucket_upper_us(int b) { return uint64_t{1} << b; }
  };
  Snapshot snapshot() const {
    Snapshot s;
    for (int i = 0; i < kBuckets; ++i) {
      s.counts[i] = counts_[i].load(std::memory_order_relaxed);
      s.total += s.counts[i];
    }
    s.sum_ns = sum_ns_.load(std::memory_order_relaxed);
    s.max_ns = max_ns_.load(std::memory_order_relaxed);
    return s;
  }
  void reset() {
    for (auto& c : counts_) c.store(0, std::memory_order_relaxed);
    sum_ns_ = 0;
    max_ns_ = 0;
  }

 private:
  std::array<std::atomic<uint64_t>, kBuckets> counts_{};
  std::atomic<uint64_t> sum_ns_{0};
  std::atomic<uint64_t> max_ns_{0};
};

inline uint64_t LatencyHistogram::Snapshot::quantile_us(double q) const {
  if (total == 0) return 0;
  uint64_t rank = static_cast<uint64_t>(q * static_cast<double>(total) + 0.999999);
  if (rank == 0) rank = 1;
  uint64_t seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    seen += counts[i];
    if (seen >= rank) return bucket_upper_us(i);
  }
  return bucket_upper_us(kBuckets - 1);
}

inline double LatencyHistogram::Snapshot::interpolated_quantile_us(double q) const {
  if (total == 0) return 0;
  const double rank = q * static_cast<double>(total);
  double seen = 0;
  for (int i = 0; i < kBuckets; ++i) {
    if (counts[i] == 0) continue;
    const double next = seen + static_cast<double>(counts[i]);
    if (next >= rank) {
      const double lo = i == 0 ? 0 : static_cast<double>(bucket_upper_us(i - 1));
      const double hi = static_cast<double>(bucket_upper_us(i));
      const double at = lo + (hi - lo) * (rank - seen) / static_cast<double>(counts[i]);
      const double max_us = static_cast<double>(max_ns) / 1000.0;
      return max_ns != 0 && at > max_us ? max_us : at;
    }
    seen = next;
  }
  return static_cast<double>(bucket_upper_us(kBuckets - 1));
}

}  // namespace tern
