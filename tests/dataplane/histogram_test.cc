// LatencyHistogram: power-of-two buckets, the bucket-bound quantile that query-migrate reports,
// and the in-bucket estimate benchmarks compare with exact references.
#include <gtest/gtest.h>

#include "dataplane/histogram.h"

namespace tern {
namespace {

TEST(LatencyHistogram, QuantileIsTheUpperBoundOfItsBucket) {
  LatencyHistogram h;
  for (int i = 0; i < 99; ++i) h.record_ns(40'000);  // 40 us: bucket [32, 64)
  h.record_ns(100'000);                               // 100 us: bucket [64, 128)
  const auto s = h.snapshot();
  EXPECT_EQ(s.total, 100u);
  EXPECT_EQ(s.quantile_us(0.5), 64u);
  EXPECT_EQ(s.quantile_us(0.99), 64u);
  EXPECT_EQ(s.quantile_us(1.0), 128u);
}

TEST(LatencyHistogram, InterpolatedQuantileLiesInsideItsBucket) {
  LatencyHistogram h;
  for (int i = 0; i < 50; ++i) h.record_ns(40'000);
  for (int i = 0; i < 50; ++i) h.record_ns(70'000);  // [64, 128), largest sample 70 us
  const auto s = h.snapshot();
  EXPECT_DOUBLE_EQ(s.interpolated_quantile_us(0.25), 48.0);  // half way through [32, 64)
  const double p99 = s.interpolated_quantile_us(0.99);
  EXPECT_GE(p99, 64.0);
  EXPECT_LE(p99, 70.0) << "capped at the largest sample";
  EXPECT_EQ(LatencyHistogram{}.snapshot().interpolated_quantile_us(0.99), 0.0);
}

}  // namespace
}  // namespace tern
