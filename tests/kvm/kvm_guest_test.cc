// The KVM guest on its own: it boots in long mode and reports progress, its writes show up in
// the dirty ring (or bitmap), and its state moves to a second VM that carries on exactly.
#include <gtest/gtest.h>

#include <chrono>
#include <thread>

#include "tests/kvm/kvm_skip.h"
#include "vm/kvm/kvm_guest.h"

namespace tern {
namespace {

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
  ASSERT_TRUE((*g)->run_ops(20000).is_ok()) << (*g)->error();
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  uint64_t ops = 0;
  for (uint32_t i = 0; i < 2; ++i) {
    KvmVcpuCounters c = (*g)->vcpu_counters(i);
    EXPECT_GE(c.ops, 20000u);
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
  EXPECT_GE(c.ring_full_exits, 5u);
  EXPECT_GE(c.penalty_ns, (c.ring_full_exits - 1) * 1'500'000ull);
  EXPECT_GE(c.ring_full_ns, c.penalty_ns);
  (*g)->stop_dirty_log();
}

// Save on one VM, load on a second: it continues exactly where the first stopped, so its memory
// equals that of a third VM that ran the whole way.
TEST(KvmGuest, StateMovesToASecondVm) {
  TERN_SKIP_WITHOUT_KVM();
  WorkloadSpec spec = small_spec(2);
  auto a = KvmGuest::create(spec);
  ASSERT_TRUE(a.is_ok()) << a.status().to_string();
  ASSERT_TRUE((*a)->run_ops(3000).is_ok()) << (*a)->error();
  std::vector<uint8_t> state = (*a)->save_state();
  ASSERT_FALSE(state.empty());

  auto b = KvmGuest::create_incoming((*a)->layout());
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  std::memcpy((*b)->ram()[0]->base(), (*a)->ram()[0]->base(), (*a)->ram()[0]->size());
  Status s = (*b)->load_state(state);
  ASSERT_TRUE(s.is_ok()) << s.to_string();
  ASSERT_TRUE((*b)->run_ops(6000).is_ok()) << (*b)->error();
  VerifyReport vb = (*b)->verify();
  EXPECT_EQ(vb.mismatches, 0u) << vb.first_mismatch;
  EXPECT_GT(vb.touched_checked, 0u);
  EXPECT_EQ(vb.touched_mismatches, 0u);

  auto c = KvmGuest::create(spec);
  ASSERT_TRUE(c.is_ok());
  ASSERT_TRUE((*c)->run_ops(6000).is_ok()) << (*c)->error();
  for (uint32_t i = 0; i < 2; ++i) EXPECT_EQ((*b)->vcpu_counters(i).ops, (*c)->vcpu_counters(i).ops);
  EXPECT_EQ(std::memcmp((*b)->ram()[0]->base() + (2u << 20), (*c)->ram()[0]->base() + (2u << 20),
                        (*c)->ram()[0]->size() - (2u << 20)),
            0)
      << "the resumed guest diverged from one that never moved";
}

TEST(KvmGuest, RejectsAThreadGuestLayout) {
  TERN_SKIP_WITHOUT_KVM();
  Layout l;
  l.blocks.push_back({"ram", 64ull << 20, 4096});
  EXPECT_FALSE(KvmGuest::create_incoming(l).is_ok());
}

}  // namespace
}  // namespace tern
