// End to end with a real KVM guest: a 128 MiB guest whose vCPUs keep writing is migrated between
// two engines over loopback and tcp, in precopy, postcopy and postcopy-preempt, 4K and 2M host
// pages. The destination guest program checks every page it uses against its version table
// (in postcopy, pages not yet received reach it through userfaultfd faults taken by KVM), and
// the destination host checks every page after completion.
#include <gtest/gtest.h>

#include <iostream>
#include <thread>

#include "tests/integration/migration_helpers.h"
#include "tests/kvm/kvm_skip.h"
#include "vm/guest_factory.h"
#include "vm/kvm/kvm_guest.h"

namespace tern {
namespace {

using namespace testing_support;

struct Case {
  std::string transport;
  std::string mode;  // precopy | postcopy | preempt
  uint32_t page;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.transport + "_" + info.param.mode + "_" +
         (info.param.page == kHugePage ? "2M" : "4K");
}

class KvmEndToEnd : public ::testing::TestWithParam<Case> {};

TEST_P(KvmEndToEnd, GuestChecksEveryPage) {
  TERN_SKIP_WITHOUT_KVM();
  const Case& c = GetParam();
  // tiny: KVM nested in the TCG VM (tests/kvm/run.sh), where each first touch of a 4 KiB page
  // costs a nested-paging fault through emulated SVM (~4 ms) and a 2 MiB page moves in ~80 ms.
  const bool tiny = tiny_scale();
  const uint64_t ram = (tiny ? 64ull : 128ull) << 20;
  if (std::string why = reserve_for(ram, c.page); !why.empty())
    GTEST_SKIP() << "2M pages need hugetlb: " << why;

  WorkloadSpec spec;
  spec.vcpus = 2;
  spec.ram_bytes = ram;
  spec.page_size = c.page;
  spec.wss_bytes = (tiny ? 4ull : 16ull) << 20;  // 4096 pages: sized for kvm_pvm's emulation
  spec.rate = 2000;              // page writes per second per vCPU
  spec.read_pct = 20;
  spec.pattern = Pattern::kRandom;
  auto guest = KvmGuest::create(spec);
  ASSERT_TRUE(guest.is_ok()) << guest.status().to_string();
  KvmGuest& src_guest = **guest;
  ASSERT_TRUE(src_guest.run_ops(500).is_ok()) << src_guest.error();  // some history to check
  ASSERT_TRUE(src_guest.start().is_ok());

  MigrationParameters params;
  params.multifd_channels = 2;
  params.downtime_limit_ms = tiny ? 500 : 100;
  params.workers = 1;
  // Postcopy: the background push of 3-5 MiB unthrottled ends in ~15 ms, before a vCPU that the
  // loaded host schedules late may fault at all (CI saw 0 requests once). At 16 MiB/s it takes
  // ~200-300 ms, during which the vCPUs' 4000 writes/s must fault on pages not yet pushed.
  if (c.mode != "precopy") params.max_bandwidth = 16ull << 20;
  IncomingMigration incoming(make_guest_factory(), params);
  auto uri = incoming.start(listen_uri(c.transport));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();

  MigrationCapabilities caps;
  caps.postcopy_ram = c.mode != "precopy";
  caps.postcopy_preempt = c.mode == "preempt";
  OutgoingMigration outgoing(src_guest, caps, params);
  ASSERT_TRUE(outgoing.start(*uri).is_ok());
  if (caps.postcopy_ram) {
    // At once: after a short sleep a fast precopy may already have converged (the engine's
    // streaming landing moves 128 MiB in under 20 ms), and postcopy could no longer start.
    Status s = outgoing.start_postcopy();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  MigrationStatus src = outgoing.wait(std::chrono::minutes(3));
  MigrationStatus dst = incoming.wait(std::chrono::minutes(1));
  MigrationInfo si = outgoing.info(), di = incoming.info();
  ASSERT_EQ(src, MigrationStatus::kCompleted) << si.error << " / destination: " << di.error;
  ASSERT_EQ(dst, MigrationStatus::kCompleted) << di.error;
  EXPECT_EQ(src_guest.error(), "");

  Result<VerifyReport> checked = check_destination(incoming);
  ASSERT_TRUE(checked.is_ok()) << checked.status().to_string();
  const VerifyReport& v = *checked;
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
  EXPECT_EQ(v.touched_mismatches, 0u) << v.first_mismatch;
  EXPECT_GT(v.pages_checked, 0u);
  if (caps.postcopy_ram) {
    EXPECT_GT(di.stats.postcopy_requests, 0u) << "the destination vCPUs never faulted";
    EXPECT_GT(v.touched_checked, 0u);
  }

  // Let the destination guest run on a little: its own checks keep passing.
  auto* dest = dynamic_cast<KvmGuest*>(incoming.guest());
  ASSERT_NE(dest, nullptr);
  EXPECT_TRUE(dest->running());
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  dest->pause();
  EXPECT_EQ(dest->error(), "");
  VerifyReport own = dest->verify_counters();
  VerifyReport all = dest->verify();
  EXPECT_GT(own.touched_checked, 0u);
  EXPECT_EQ(own.touched_mismatches, 0u) << own.first_mismatch;
  EXPECT_EQ(all.mismatches, 0u) << all.first_mismatch;
  std::cout << "[ figures  ] kvm " << case_name({c, 0}) << ": " << si.stats.transferred / 1048576
            << " MiB in " << si.stats.total_time << " ms, downtime " << si.stats.downtime
            << " ms, rounds " << si.stats.dirty_sync_count << ", requests "
            << si.stats.postcopy_requests << ", fault p50/p99 " << di.fault_latency.quantile_us(0.5)
            << "/" << di.fault_latency.quantile_us(0.99) << " us, guest checks "
            << own.touched_checked << " (0 mismatches)\n";
}

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (std::string t : {"loopback", "tcp"})
    for (std::string m : {"precopy", "postcopy", "preempt"})
      for (uint32_t p : {kSmallPage, kHugePage}) v.push_back({t, m, p});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Migrations, KvmEndToEnd, ::testing::ValuesIn(all_cases()), case_name);

}  // namespace
}  // namespace tern
