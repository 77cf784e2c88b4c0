// The KVM guest on its own: it boots in long mode and reports progress, its writes show up in
// the dirty ring (or bitmap), and its state moves to a second VM that carries on exactly.
#include "vm/kvm/kvm_guest.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "dataplane/uffd.h"
#include "tests/integration/migration_helpers.h"
#include "tests/kvm/kvm_skip.h"

namespace tern {
namespace {

// Operation counts: a fifth under TERN_TEST_SCALE=tiny (KVM nested in the TCG VM, run.sh).
uint64_t scaled_ops(uint64_t n) { return testing_support::tiny_scale() ? n / 5 : n; }

WorkloadSpec small_spec(uint32_t vcpus = 1) {
  WorkloadSpec s;
  s.vcpus = vcpus;
  s.ram_bytes = 64ull << 20;
  s.wss_bytes = 8ull << 20;  // 2048 pages
  s.pattern = Pattern::kRandom;
  s.seed = 7;
  return s;
}

TEST(KvmGuest, BootsAndReportsProgress) {
  TERN_SKIP_WITHOUT_KVM();
  auto g = KvmGuest::create(small_spec(2));
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  std::printf("%s\n", (*g)->describe().c_str());
  const auto t0 = std::chrono::steady_clock::now();
  ASSERT_TRUE((*g)->run_ops(scaled_ops(20000)).is_ok()) << (*g)->error();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t ops = 0;
  for (uint32_t i = 0; i < 2; ++i) {
    KvmVcpuCounters c = (*g)->vcpu_counters(i);
    EXPECT_GE(c.ops, scaled_ops(20000));
    EXPECT_EQ(c.mismatches, 0u);
    EXPECT_EQ(c.ops, c.writes + c.reads);
    ops += c.ops;
  }
  std::printf("guest ops: %llu in %.3f s = %.0f ops/s (2 vCPUs, no dirty logging)\n",
              static_cast<unsigned long long>(ops), s, ops / s);
  VerifyReport v = (*g)->verify();
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
  EXPECT_GT(v.pages_checked, 0u);
  EXPECT_EQ((*g)->error(), "");
}

void expect_harvest_sees_writes(bool ring) {
  KvmGuest::Options opt;
  opt.want_ring = ring;
  WorkloadSpec spec = small_spec(1);
  spec.pattern = Pattern::kSequential;
  auto g = KvmGuest::create(spec, opt);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  KvmGuest& guest = **g;
  if (ring && guest.vm().dirty_mode() != KvmDirtyMode::kRing)
    GTEST_SKIP() << "this host's KVM has no dirty ring";
  ASSERT_TRUE(guest.run_ops(100).is_ok()) << guest.error();
  ASSERT_TRUE(guest.start_dirty_log().is_ok());
  // Sequential over 2048 pages: the next 1000 writes touch 1000 known pages.
  const uint64_t before = guest.vcpu_counters(0).ops;
  ASSERT_TRUE(guest.run_ops(before + 1000).is_ok()) << guest.error();
  const uint64_t after = guest.vcpu_counters(0).ops;
  MigrationBitmap bm(host_page_sizes(guest.ram()), block_sizes(guest.ram()));
  const uint64_t n = guest.collect_dirty(bm);
  const uint64_t first = guest.data_first_page();
  for (uint64_t op = before; op < after; ++op)
    EXPECT_TRUE(bm.block(0).test(first + op % guest.working_set_pages())) << "op " << op;
  // Plus the table pages, the vCPU area and the stack: a handful more, not the whole RAM.
  EXPECT_GE(n, after - before);
  EXPECT_LT(n, after - before + 64);
  if (ring) {
    DirtyRingCounters c = guest.dirty_ring_counters(0);
    EXPECT_GE(c.dirty_pages, after - before);
    EXPECT_EQ(guest.dirty_limit_vcpus(), 1u);
  }
  // Nothing written since: the next collection is (almost) empty.
  MigrationBitmap bm2(host_page_sizes(guest.ram()), block_sizes(guest.ram()));
  EXPECT_EQ(guest.collect_dirty(bm2), 0u);
  guest.stop_dirty_log();
}

TEST(KvmGuest, DirtyRingSeesEveryWrite) {
  TERN_SKIP_WITHOUT_KVM();
  expect_harvest_sees_writes(true);
}

TEST(KvmGuest, DirtyBitmapFallbackSeesEveryWrite) {
  TERN_SKIP_WITHOUT_KVM();
  expect_harvest_sees_writes(false);
}

// A ring-full event every `ring=` entries, each sleeping the penalty set for that vCPU.
TEST(KvmGuest, RingFullTakesThePenalty) {
  TERN_SKIP_WITHOUT_KVM();
  WorkloadSpec spec = small_spec(1);
  spec.ring_entries = 256;
  auto g = KvmGuest::create(spec);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  if ((*g)->dirty_limit_vcpus() == 0) GTEST_SKIP() << "this host's KVM has no dirty ring";
  (*g)->set_ring_full_penalty(0, 2000);
  ASSERT_TRUE((*g)->start_dirty_log().is_ok());
  ASSERT_TRUE((*g)->run_ops(3000).is_ok()) << (*g)->error();
  DirtyRingCounters c = (*g)->dirty_ring_counters(0);
  // 2048 pages at 256 per ring: ~8 events, fewer when a busy host delays the reaper.
  EXPECT_GE(c.ring_full_exits, 2u);
  EXPECT_GE(c.penalty_ns, (c.ring_full_exits - 1) * 1'500'000ull);
  EXPECT_GE(c.ring_full_ns, c.penalty_ns);
  (*g)->stop_dirty_log();
}

// S4's promise at the guest's level: penalties are taken at ring-full events, which writes
// cause; so with the same penalty on both, a writing vCPU is slowed and a reading vCPU in the
// same guest is not (its only writes are its counters and stack: a few ring entries a reset).
TEST(KvmGuest, PenaltySlowsTheWriterNotTheReader) {
  TERN_SKIP_WITHOUT_KVM();
  KvmGuest::Options opt;
  opt.vcpu_read_pct = {0, 100};
  WorkloadSpec spec = small_spec(2);
  spec.ram_bytes = 128ull << 20;
  spec.wss_bytes = 64ull << 20;  // 8192 pages per vCPU: the writer keeps finding new pages
  spec.ring_entries = 256;
  auto g = KvmGuest::create(spec, opt);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  KvmGuest& guest = **g;
  if (guest.dirty_limit_vcpus() == 0) GTEST_SKIP() << "this host's KVM has no dirty ring";
  ASSERT_TRUE(guest.start_dirty_log().is_ok());
  for (uint32_t i = 0; i < 2; ++i) guest.set_ring_full_penalty(i, 50000);  // 50 ms
  ASSERT_TRUE(guest.start().is_ok());
  // 1.5 s, or longer until the writer has met 3 ring-full events (a nested KVM in the TCG VM
  // writes ~400 pages a second; at most a minute).
  std::this_thread::sleep_for(std::chrono::milliseconds(1500));
  for (int i = 0; i < 600 && guest.dirty_ring_counters(0).ring_full_exits < 3; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  guest.pause();
  ASSERT_EQ(guest.error(), "");
  KvmVcpuCounters w = guest.vcpu_counters(0), r = guest.vcpu_counters(1);
  DirtyRingCounters wr = guest.dirty_ring_counters(0), rr = guest.dirty_ring_counters(1);
  std::printf(
      "writer: %llu ops, %llu ring entries, %llu ring-full, %.0f ms penalty; reader: "
      "%llu ops, %llu ring entries, %llu ring-full, %.0f ms penalty\n",
      (unsigned long long)w.ops, (unsigned long long)wr.dirty_pages,
      (unsigned long long)wr.ring_full_exits, wr.penalty_ns / 1e6, (unsigned long long)r.ops,
      (unsigned long long)rr.dirty_pages, (unsigned long long)rr.ring_full_exits,
      rr.penalty_ns / 1e6);
  EXPECT_EQ(w.reads, 0u);
  EXPECT_EQ(r.writes, 0u);
  EXPECT_GE(wr.ring_full_exits, 3u);
  EXPECT_GT(wr.penalty_ns, 10 * rr.penalty_ns);
  EXPECT_LE(rr.ring_full_exits, 1u);
  // The speeds themselves depend on how busy this host is; the reader only has to be ahead.
  EXPECT_GT(r.ops, w.ops) << "the reader should run ahead of the throttled writer";
  guest.stop_dirty_log();
  VerifyReport v = guest.verify();
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
}

// Save on one VM, load on a second: it continues exactly where the first stopped, so its memory
// equals that of a third VM that ran the whole way.
TEST(KvmGuest, StateMovesToASecondVm) {
  TERN_SKIP_WITHOUT_KVM();
  WorkloadSpec spec = small_spec(2);
  auto a = KvmGuest::create(spec);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE((*a)->run_ops(scaled_ops(3000)).is_ok()) << (*a)->error();
  std::vector<uint8_t> state = (*a)->save_state();
  ASSERT_FALSE(state.empty());

  auto b = KvmGuest::create_incoming((*a)->layout());
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  std::memcpy((*b)->ram()[0]->base(), (*a)->ram()[0]->base(), (*a)->ram()[0]->size());
  Status s = (*b)->load_state(state);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_TRUE((*b)->run_ops(scaled_ops(6000)).is_ok()) << (*b)->error();
  VerifyReport vb = (*b)->verify();
  EXPECT_EQ(vb.mismatches, 0u) << vb.first_mismatch;
  EXPECT_GT(vb.touched_checked, 0u);
  EXPECT_EQ(vb.touched_mismatches, 0u);

  auto c = KvmGuest::create(spec);
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE((*c)->run_ops(scaled_ops(6000)).is_ok()) << (*c)->error();
  for (uint32_t i = 0; i < 2; ++i)
    EXPECT_EQ((*b)->vcpu_counters(i).ops, (*c)->vcpu_counters(i).ops);
  EXPECT_EQ(std::memcmp((*b)->ram()[0]->base() + (2u << 20), (*c)->ram()[0]->base() + (2u << 20),
                        (*c)->ram()[0]->size() - (2u << 20)),
            0)
      << "the resumed guest diverged from one that never moved";
}

// kvm_pvm writes past the end of a full ring (docs/kvm.md), so the reaper drains KVM's ring
// long before it fills. Here with a 4096-entry kernel ring, 1 ms reaper and 512-entry soft
// ring: the soft ring-full events come, KVM's ring is never overrun, no write goes unreported.
TEST(KvmGuest, ReaperKeepsKernelRingFromFilling) {
  TERN_SKIP_WITHOUT_KVM();
  KvmGuest::Options opt;
  opt.kernel_ring_entries = 4096;
  opt.reap_ms = 1;
  WorkloadSpec spec = small_spec(1);
  spec.pattern = Pattern::kSequential;
  spec.ring_entries = 512;
  auto g = KvmGuest::create(spec, opt);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  KvmGuest& guest = **g;
  if (guest.dirty_limit_vcpus() == 0) GTEST_SKIP() << "this host's KVM has no dirty ring";
  ASSERT_TRUE(guest.start_dirty_log().is_ok());
  // 6000 sequential writes over 2048 pages: every page of the working set, ~12 soft fills.
  ASSERT_TRUE(guest.run_ops(6000).is_ok()) << guest.error();
  MigrationBitmap bm(host_page_sizes(guest.ram()), block_sizes(guest.ram()));
  guest.collect_dirty(bm);
  for (uint64_t i = 0; i < guest.working_set_pages(); ++i)
    ASSERT_TRUE(bm.block(0).test(guest.data_first_page() + i)) << "page " << i << " lost";
  KvmVcpuCounters c = guest.vcpu_counters(0);
  DirtyRingCounters r = guest.dirty_ring_counters(0);
  std::printf("ring-full events %llu, kernel ring overruns %llu\n",
              static_cast<unsigned long long>(r.ring_full_exits),
              static_cast<unsigned long long>(c.ring_overruns));
  EXPECT_GE(r.ring_full_exits, 5u);
  EXPECT_EQ(c.ring_overruns, 0u);
  guest.stop_dirty_log();
}

// Figures for docs/kvm.md: guest operations and dirtied pages per second, unpaced, 1 vCPU.
TEST(KvmGuest, DirtyRateFigures) {
  TERN_SKIP_WITHOUT_KVM();
  for (bool logging : {false, true}) {
    WorkloadSpec spec = small_spec(1);
    spec.wss_bytes = 32ull << 20;  // 8192 pages
    KvmGuest::Options opt;
    if (const char* b = std::getenv("TERN_KVM_BATCH")) opt.batch = std::atoi(b);
    auto g = KvmGuest::create(spec, opt);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    ASSERT_TRUE((*g)->run_ops(16384).is_ok());  // every page touched once before timing
    if (logging) {
      ASSERT_TRUE((*g)->start_dirty_log().is_ok());
    }
    MigrationBitmap bm(host_page_sizes((*g)->ram()), block_sizes((*g)->ram()));
    if (logging) (*g)->collect_dirty(bm);
    const uint64_t ops0 = (*g)->vcpu_counters(0).ops;
    const auto t0 = std::chrono::steady_clock::now();
    ASSERT_TRUE((*g)->start().is_ok());
    std::this_thread::sleep_for(std::chrono::milliseconds(700));
    (*g)->pause();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    const uint64_t ops = (*g)->vcpu_counters(0).ops - ops0;
    uint64_t dirty = 0;
    if (logging) {
      MigrationBitmap bm2(host_page_sizes((*g)->ram()), block_sizes((*g)->ram()));
      dirty = (*g)->collect_dirty(bm2);
      EXPECT_GT(dirty, 0u);
    }
    std::printf(
        "[ figures  ] kvm guest, 1 vCPU, random writes over 8192 pages, dirty logging %s: "
        "%.0f ops/s%s",
        logging ? "on" : "off", ops / s, logging ? "" : "\n");
    if (logging)
      std::printf(", %.0f distinct pages dirtied/s (ring entries/s %.0f)\n", dirty / s,
                  (*g)->dirty_ring_counters(0).dirty_pages / s);
    if (logging) (*g)->stop_dirty_log();
  }
}

// A destination vCPU blocked in a userfaultfd fault that nobody serves (a postcopy that failed):
// once the engine lets go of the userfaultfd, as it does when it fails, the guest can be
// destroyed; the vCPU thread is also kicked out of KVM_RUN with a signal (which releases a
// blocked fault on KVM with hardware paging; kvm_pvm retries the fault in the kernel until the
// userfaultfd goes away).
TEST(KvmGuest, DestroyedAfterAFailedPostcopy) {
  TERN_SKIP_WITHOUT_KVM();
  auto a = KvmGuest::create(small_spec(1));
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE((*a)->run_ops(100).is_ok());
  std::vector<uint8_t> state = (*a)->save_state();
  auto b = KvmGuest::create_incoming((*a)->layout());
  ASSERT_TRUE(b.is_ok());
  auto uffd = Userfault::open();
  if (!uffd) GTEST_SKIP() << "no userfaultfd: " << uffd.status().to_string();
  RamBlock* ram = (*b)->ram()[0];
  ASSERT_TRUE((*uffd)->register_range(ram->base(), ram->size(), ram->host_page_size()).is_ok());
  ASSERT_TRUE((*b)->load_state(state).is_ok());
  ASSERT_TRUE((*b)->start().is_ok());  // its first instruction fetch faults and waits
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ((*b)->vcpu_counters(0).progress_exits, 0u);
  const auto t0 = std::chrono::steady_clock::now();
  uffd->reset();
  b->reset();
  // Quick on a quiet host (~0.1 s); kvm_pvm notices the closed userfaultfd late when busy.
  EXPECT_LT(std::chrono::steady_clock::now() - t0, std::chrono::seconds(30));
}

TEST(KvmGuest, RejectsAThreadGuestLayout) {
  TERN_SKIP_WITHOUT_KVM();
  Layout l;
  l.blocks.push_back({"ram", 64ull << 20, 4096});
  EXPECT_FALSE(KvmGuest::create_incoming(l).is_ok());
}

}  // namespace
}  // namespace tern
