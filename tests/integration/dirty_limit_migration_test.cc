// Dirty limit (S4) in a migration: a guest that dirties faster than the link does not converge
// without the limit (precopy runs out of rounds and forces the switchover), and converges with
// the dirty-limit capability; every page verifies either way.
#include <gtest/gtest.h>

#include <chrono>
#include <optional>
#include <thread>

#include "tests/integration/migration_helpers.h"

namespace tern {
namespace {

using namespace testing_support;

struct Outcome {
  MigrationInfo source, destination;
  std::optional<VerifyReport> check;  // the destination's check of every page, once completed
};

// Waits until every vCPU wrote its share of the working set at least once: on a loaded host the
// vCPUs may not have run yet when the migration starts, and a migration of a guest that wrote
// nothing converges at once (seen once setups no longer read hwloc's topology each time).
void wait_until_dirtying(const ThreadGuest& guest, uint32_t vcpus, uint64_t writes_each) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::minutes(1);
  for (uint32_t v = 0; v < vcpus; ++v)
    while (guest.vcpu_stats(v).writes < writes_each &&
           std::chrono::steady_clock::now() < deadline)
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
}

Outcome migrate(bool dirty_limit) {
  // Two vCPUs writing 32 MiB as fast as they can, over a link held to 32 MB/s.
  auto guest = ThreadGuest::create(*parse_workload(
      "vcpus=2,ram=128M,wss=32M,rate=0,pattern=random,ring=256,seed=11"));
  EXPECT_TRUE(guest.is_ok()) << guest.status().to_string();
  if (!guest.is_ok()) return {};
  EXPECT_TRUE((*guest)->start().is_ok());
  wait_until_dirtying(**guest, 2, 4096);  // 2 x 16 MiB: the working set

  MigrationParameters params;
  params.multifd_channels = 2;
  params.workers = 1;
  params.max_bandwidth = 32'000'000;
  params.downtime_limit_ms = 100;
  params.max_rounds = 6;
  params.vcpu_dirty_limit = 1;
  params.vcpu_dirty_limit_period_ms = 200;
  IncomingMigration incoming(make_thread_guest_factory(), params);
  auto uri = incoming.start(listen_uri("loopback"));
  EXPECT_TRUE(uri.is_ok()) << uri.status().to_string();
  MigrationCapabilities caps;
  caps.dirty_limit = dirty_limit;
  OutgoingMigration outgoing(**guest, caps, params);
  EXPECT_TRUE(outgoing.start(*uri).is_ok());
  EXPECT_EQ(outgoing.wait(std::chrono::minutes(3)), MigrationStatus::kCompleted)
      << outgoing.info().error;
  EXPECT_EQ(incoming.wait(std::chrono::minutes(1)), MigrationStatus::kCompleted)
      << incoming.info().error;
  Outcome o{outgoing.info(), incoming.info(), std::nullopt};
  if (o.destination.status == MigrationStatus::kCompleted) {
    Result<VerifyReport> checked = check_destination(incoming);
    EXPECT_TRUE(checked.is_ok()) << checked.status().to_string();
    if (checked.is_ok()) o.check = *checked;
  }
  return o;
}

void print(const char* what, const Outcome& o) {
  const MigrationStats& s = o.source.stats;
  std::printf("%s: %s after %lu syncs, total %lu ms, downtime %lu ms, %lu MB sent, "
              "throttle %lu us/round, ring-full %lu us\n",
              what, s.switchover_forced ? "forced switchover" : "converged",
              static_cast<unsigned long>(s.dirty_sync_count),
              static_cast<unsigned long>(s.total_time), static_cast<unsigned long>(s.downtime),
              static_cast<unsigned long>(s.transferred >> 20),
              static_cast<unsigned long>(s.dirty_limit_throttle_time_per_round),
              static_cast<unsigned long>(s.dirty_limit_ring_full_time));
}

TEST(DirtyLimitMigration, ConvergesOnlyWithTheLimit) {
  Outcome free_run = migrate(false);
  print("without dirty limit", free_run);
  EXPECT_TRUE(free_run.source.stats.switchover_forced) << "the guest should outrun the link";
  EXPECT_FALSE(free_run.source.stats.dirty_limit_active);
  ASSERT_TRUE(free_run.check.has_value());
  EXPECT_EQ(free_run.check->mismatches, 0u) << free_run.check->first_mismatch;

  Outcome limited = migrate(true);
  print("with dirty limit", limited);
  EXPECT_FALSE(limited.source.stats.switchover_forced) << "the limit should let precopy converge";
  EXPECT_TRUE(limited.source.stats.dirty_limit_active);
  EXPECT_GT(limited.source.stats.dirty_limit_throttle_time_per_round, 0u);
  EXPECT_LE(limited.source.stats.downtime, free_run.source.stats.downtime + 100);
  ASSERT_TRUE(limited.check.has_value());
  EXPECT_EQ(limited.check->mismatches, 0u) << limited.check->first_mismatch;
}

}  // namespace
}  // namespace tern
