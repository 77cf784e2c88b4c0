// Dirty limit (S4) on the KVM guest: the throttle thread holds a writing vCPU to its limit
// through the ring-full penalty, while a reading vCPU of the same guest is never penalised.
#include <gtest/gtest.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <thread>
#include <vector>

#include "dataplane/dirty_limit.h"
#include "tests/kvm/kvm_skip.h"
#include "vm/kvm/kvm_guest.h"

namespace tern {
namespace {

using namespace std::chrono_literals;

// The writer's rate from its ring-full records (whole ring rounds, as the limiter measures).
double writer_mbps(const Guest& g, std::chrono::milliseconds span) {
  const DirtyRingCounters a = g.dirty_ring_counters(0);
  const auto t0 = std::chrono::steady_clock::now();
  std::this_thread::sleep_for(span);
  const DirtyRingCounters b = g.dirty_ring_counters(0);
  if (a.last_exit_ns && b.last_exit_ns > a.last_exit_ns)
    return pages_to_mbps(b.pages_at_last_exit - a.pages_at_last_exit,
                         static_cast<double>(b.last_exit_ns - a.last_exit_ns) / 1e9);
  return pages_to_mbps(b.dirty_pages - a.dirty_pages,
                       std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count());
}

TEST(KvmDirtyLimit, WriterHeldToItsLimitReaderNeverPenalised) {
  TERN_SKIP_WITHOUT_KVM();
  auto spec = parse_workload("vcpus=2,readers=1,ram=128M,wss=64M,pattern=random,ring=64,seed=3");
  ASSERT_TRUE(spec);
  auto made = KvmGuest::create(*spec, {});
  ASSERT_TRUE(made) << made.status().to_string();
  KvmGuest& g = **made;
  if (g.dirty_limit_vcpus() == 0) GTEST_SKIP() << "this host's KVM has no dirty ring";
  DirtyLimiter limiter(g);
  ASSERT_TRUE(limiter.set_period(200ms));
  ASSERT_TRUE(g.start());
  ASSERT_TRUE(g.set_dirty_limit_tracking(true));
  std::this_thread::sleep_for(300ms);
  const double natural = writer_mbps(g, 1500ms);
  ASSERT_TRUE(g.set_dirty_limit_tracking(false));
  // The limit's unit is 1 MB/s: a guest under 2 MB/s (KVM nested in the TCG VM writes ~0.2)
  // leaves no limit to set below its natural rate.
  if (natural <= 2.0) {
    g.pause();
    GTEST_SKIP() << "the guest writes " << natural << " MB/s here, too slowly to set a dirty "
                 << "limit (1 MB/s steps) below it";
  }
  const double limit = std::max(1.0, std::floor(natural / 3));

  ASSERT_TRUE(limiter.set(std::nullopt, static_cast<uint64_t>(limit)));
  std::this_thread::sleep_for(4s);
  std::vector<double> rates;
  for (int i = 0; i < 5; ++i) rates.push_back(writer_mbps(g, 800ms));
  const auto [lo, hi] = std::minmax_element(rates.begin(), rates.end());
  double mean = 0;
  for (double r : rates) mean += r / 5;
  const DirtyRingCounters reader = g.dirty_ring_counters(1);
  std::printf("kvm writer: natural %.1f MB/s, limit %.0f MB/s, settled %.2f MB/s (windows "
              "%.2f..%.2f, spread %.1f%%), penalty %lu us; reader: %lu ring-full exits, %lu ns "
              "of penalty\n",
              natural, limit, mean, *lo, *hi, (*hi - *lo) / limit * 100,
              static_cast<unsigned long>(limiter.query()[0].penalty_us),
              static_cast<unsigned long>(reader.ring_full_exits),
              static_cast<unsigned long>(reader.penalty_ns));
  // The controller is the one the thread guest's test holds within 10% per window; here the
  // rate it sees is coarser (kvm_pvm re-logs pages, so the VMM counts a page once per ring reset,
  // at harvest time, every millisecond), so the test asks for the mechanism: the mean at the
  // limit or below (a loaded host slows the emulated guest on its own), every window well
  // below the natural rate.
  EXPECT_LE(mean, 1.25 * limit);
  for (double r : rates) EXPECT_LT(r, 0.75 * natural) << "a window escaped the limit";
  EXPECT_EQ(reader.penalty_ns, 0u);
  ASSERT_TRUE(limiter.cancel(std::nullopt));
  g.pause();
  EXPECT_EQ(g.error(), "");
}

}  // namespace
}  // namespace tern
