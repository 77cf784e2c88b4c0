// Dirty limit (S4) CALCULATE step: next_penalty_us against a model of a vCPU that fills its ring
// at a natural rate and sleeps its penalty at each ring-full exit. The real controller against
// a real thread guest is tests/vm/dirty_limit_guest_test.cc.
#include <gtest/gtest.h>

#include <cmath>
#include <vector>

#include "dataplane/dirty_limit.h"

namespace tern {
namespace {

constexpr double kPagesPerMb = 256;

// A vCPU dirtying `natural_mbps` when unthrottled, with a ring of `ring` entries, paying
// `harvest_us` per exit plus the penalty. Time advances in windows of `period_s`; exits are
// whole (the fraction of a round carries over to the next window).
struct ModelVcpu {
  double natural_mbps;
  double ring;
  double harvest_us;
  double carry = 0;  // fraction of a round begun in the previous window

  ThrottleWindow window(double period_s, uint64_t penalty_us) {
    const double round_s = ring / (natural_mbps * kPagesPerMb) + (harvest_us + penalty_us) / 1e6;
    const double rounds = carry + period_s / round_s;
    const double whole = std::floor(rounds);
    const uint64_t pages = static_cast<uint64_t>((rounds - carry) * ring);
    carry = rounds - whole;
    return {.dirty_pages = pages, .ring_full_exits = static_cast<uint64_t>(whole),
            .seconds = period_s};
  }
};

struct Trace {
  std::vector<double> rates;       // per closed window
  std::vector<uint64_t> penalties;  // after each closed window
};

// Feeds the model's cumulative counters to a VcpuThrottle once per period, as the limiter does.
Trace simulate(ModelVcpu v, double limit, int periods, double period_s = 1.0) {
  Trace r;
  VcpuThrottle t;
  DirtyRingCounters c;
  t.start(c, 0);
  for (int i = 1; i <= periods; ++i) {
    ThrottleWindow w = v.window(period_s, t.penalty_us);
    c.dirty_pages += w.dirty_pages;
    c.ring_full_exits += w.ring_full_exits;
    if (t.observe(c, i * period_s, limit, 5 * period_s)) {
      r.rates.push_back(t.current_mbps);
      r.penalties.push_back(t.penalty_us);
    }
  }
  return r;
}

int direction_changes(const std::vector<uint64_t>& p, size_t from) {
  int changes = 0, last = 0;
  for (size_t i = from + 1; i < p.size(); ++i) {
    int d = p[i] > p[i - 1] ? 1 : p[i] < p[i - 1] ? -1 : 0;
    if (d != 0 && last != 0 && d != last) ++changes;
    if (d != 0) last = d;
  }
  return changes;
}

TEST(DirtyLimitStep, HoldsInsideTheBand) {
  // 4096 pages in 1 s = 16 MB/s against a 16.5 MB/s limit: within 5%, no change.
  EXPECT_EQ(next_penalty_us(1234, 16.5, {.dirty_pages = 4096, .ring_full_exits = 4, .seconds = 1}),
            1234u);
}

TEST(DirtyLimitStep, CannotActWithoutARingFullExit) {
  EXPECT_EQ(next_penalty_us(50, 1, {.dirty_pages = 100000, .ring_full_exits = 0, .seconds = 1}),
            50u);
}

TEST(DirtyLimitStep, FarAboveAddsWhatPaysBackTheExcess) {
  // 10 rounds of 1024 pages in 1 s = 40 MB/s, limit 10 MB/s: at the limit those pages take 4 s,
  // so each of the 10 exits should sleep 0.3 s more; the step takes 80% of that.
  uint64_t p = next_penalty_us(0, 10, {.dirty_pages = 10240, .ring_full_exits = 10, .seconds = 1});
  EXPECT_NEAR(static_cast<double>(p), 0.8 * 300000, 1);
}

TEST(DirtyLimitStep, FixedStepWhenClose) {
  // 2816 pages in 1 s = 11 MB/s against 10 (10% above): a step of 1/20 of a ring round at the
  // limit (1408 pages per exit at 10 MB/s = 550 ms), i.e. 27.5 ms.
  EXPECT_EQ(next_penalty_us(100000, 10, {.dirty_pages = 2816, .ring_full_exits = 2, .seconds = 1}),
            127500u);
  // And the same step down when 10% below.
  EXPECT_EQ(next_penalty_us(100000, 10, {.dirty_pages = 2304, .ring_full_exits = 2, .seconds = 1}),
            100000u - 22500u);
}

TEST(DirtyLimitStep, NeverNegativeAndNeverMoreThanARoundAtTheLimit) {
  EXPECT_EQ(next_penalty_us(10, 100, {.dirty_pages = 256, .ring_full_exits = 1, .seconds = 1}), 0u);
  // Absurdly fast: capped at the time a ring round takes at the limit (1024 pages at 1 MB/s).
  uint64_t p = next_penalty_us(3900000, 1, {.dirty_pages = 1024 * 1000,
                                            .ring_full_exits = 1000, .seconds = 0.001});
  EXPECT_EQ(p, 4000000u);
}

// The seed's promise: the rate comes down to the limit progressively and stays there without
// oscillating, for limits far below and close to the natural rate.
class DirtyLimitConverges : public ::testing::TestWithParam<std::pair<double, double>> {};

TEST_P(DirtyLimitConverges, SettlesWithinTenPercentWithoutOscillating) {
  const auto [natural, limit] = GetParam();
  Trace r = simulate({.natural_mbps = natural, .ring = 1024, .harvest_us = 50}, limit, 60);
  size_t settled = r.rates.size();
  for (size_t i = 0; i < r.rates.size(); ++i) {
    bool all_in = true;
    for (size_t j = i; j < r.rates.size(); ++j)
      all_in &= std::fabs(r.rates[j] - limit) <= 0.10 * limit;
    if (all_in) {
      settled = i;
      break;
    }
  }
  ASSERT_GE(r.rates.size(), 8u);
  ASSERT_LT(settled, r.rates.size() - 5) << "never settled; last rate " << r.rates.back();
  EXPECT_LE(direction_changes(r.penalties, settled), 1) << "the penalty oscillates";
  std::printf("natural %.0f MB/s, limit %.0f: settled after %zu windows at %.1f MB/s, "
              "penalty %lu us\n", natural, limit, settled, r.rates.back(),
              static_cast<unsigned long>(r.penalties.back()));
}

INSTANTIATE_TEST_SUITE_P(Limits, DirtyLimitConverges,
                         ::testing::Values(std::pair{2000.0, 10.0}, std::pair{800.0, 100.0},
                                           std::pair{300.0, 200.0}, std::pair{120.0, 100.0},
                                           std::pair{5000.0, 1.0}));

TEST(DirtyLimitStep, UnthrottledWhenTheGuestSlowsDown) {
  // Throttled to 10 MB/s, the guest then only dirties 5 MB/s on its own: the penalty goes.
  Trace r = simulate({.natural_mbps = 400, .ring = 1024, .harvest_us = 50}, 10, 20);
  uint64_t p = r.penalties.back();
  ASSERT_GT(p, 0u);
  ModelVcpu slow{.natural_mbps = 5, .ring = 1024, .harvest_us = 50};
  VcpuThrottle t;
  t.penalty_us = p;
  DirtyRingCounters c;
  t.start(c, 0);
  for (int i = 1; i <= 40; ++i) {
    ThrottleWindow w = slow.window(1.0, t.penalty_us);
    c.dirty_pages += w.dirty_pages;
    c.ring_full_exits += w.ring_full_exits;
    t.observe(c, i, 10, 5);
  }
  p = t.penalty_us;
  EXPECT_EQ(p, 0u);
}

}  // namespace
}  // namespace tern
