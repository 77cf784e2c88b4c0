#include "control/progress_rate.h"

#include <gtest/gtest.h>

#include "control/format.h"

namespace tern::control {
namespace {

constexpr uint64_t kMiB = 1 << 20;

// Untouched memory skipped: 1 GiB of RAM covered per second while only headers go out
// (1 MB/s sent). The ETA follows the RAM left, not the bytes sent (the bug: "ETA 9m 59s" for a
// migration that ended 4 s later).
TEST(ProgressRate, EtaFollowsRamCoveredNotBytesSent) {
  ProgressRate r;
  uint64_t remaining = 4096 * kMiB, sent = 0;
  for (int i = 0; i <= 10; ++i) {
    r.add(i * 0.2, remaining, sent, 1e6);
    remaining -= 205 * kMiB;  // ~1 GiB/s of RAM covered
    sent += 200 * 1000;       // 1 MB/s sent
  }
  ASSERT_TRUE(r.eta_ms().has_value());
  EXPECT_GT(r.work_rate(), 900.0 * kMiB);
  EXPECT_LT(*r.eta_ms(), 3000u) << "about 2 GiB left at ~1 GiB/s";
  EXPECT_GT(*r.eta_ms(), 1000u);
}

// A guest dirtying as fast as pages go: remaining stays flat, so the send rate is the fallback.
TEST(ProgressRate, FlatRemainingFallsBackToSendRate) {
  ProgressRate r;
  for (int i = 0; i <= 5; ++i) r.add(i * 0.2, 100 * kMiB, i * 20 * kMiB, 100.0 * kMiB);
  EXPECT_NEAR(r.send_rate(), 100.0 * kMiB, 1.0 * kMiB);
  EXPECT_NEAR(r.work_rate(), r.send_rate(), 1.0);
  ASSERT_TRUE(r.eta_ms().has_value());
  EXPECT_NEAR(static_cast<double>(*r.eta_ms()), 1000.0, 100.0);
}

// One stalled sample (the rate halves for a moment) moves the ETA up by a fraction of the jump,
// and it keeps counting down while the rate is steady.
TEST(ProgressRate, OneSlowSampleDoesNotMakeTheEtaLeap) {
  ProgressRate r;
  uint64_t remaining = 1000 * kMiB;
  double t = 0;
  for (int i = 0; i < 10; ++i, t += 0.2) {
    r.add(t, remaining, 0, 0);
    remaining -= 20 * kMiB;  // 100 MiB/s
  }
  const uint64_t steady = *r.eta_ms();
  r.add(t + 1.8, remaining, 0, 0);  // 1.8 s without progress
  ASSERT_TRUE(r.eta_ms().has_value());
  EXPECT_LT(*r.eta_ms(), steady * 2) << "steady " << steady;
}

TEST(ProgressRate, NoEtaBeforeARateAndZeroAtTheEnd) {
  ProgressRate r;
  r.add(0, 100 * kMiB, 0, 0);
  EXPECT_FALSE(r.eta_ms().has_value());
  r.add(0.5, 0, 100 * kMiB, 0);
  EXPECT_EQ(r.eta_ms(), 0u);
}

TEST(ProgressLine, ShowsTheCoveredRateWhenItOutrunsTheSendRate) {
  Progress p;
  p.status = "active";
  p.total = 2048 * kMiB;
  p.remaining = 1024 * kMiB;
  p.bytes_per_second = 1e6;
  p.work_per_second = 1e9;
  p.eta_ms = 1000;
  std::string line = progress_line(p);
  EXPECT_NE(line.find("covering 1000.0 MB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 1.00 s"), std::string::npos) << line;
}

}  // namespace
}  // namespace tern::control
