// Thread guest on the source side: dirty tracking, ring-full exits, pause.
#include "vm/thread_guest.h"

#include <gtest/gtest.h>

#include <chrono>
#include <thread>

namespace tern {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<ThreadGuest> make_guest(const char* spec_text) {
  auto spec = parse_workload(spec_text);
  EXPECT_TRUE(spec) << spec.status().to_string();
  auto g = ThreadGuest::create(*spec);
  EXPECT_TRUE(g) << g.status().to_string();
  return std::move(g).value();
}

MigrationBitmap make_bitmap(const Guest& g) {
  std::vector<uint32_t> page_sizes;
  std::vector<uint64_t> sizes;
  for (RamBlock* b : g.ram()) {
    page_sizes.push_back(b->host_page_size());
    sizes.push_back(b->size());
  }
  return MigrationBitmap(page_sizes, sizes);
}

// Many vCPUs write random pages while this thread collects; after a pause and a final collect,
// every page whose version changed between two snapshots S[k-1] and S[k] (taken just before
// collects k-1 and k) must have been reported by collect k-1 or a later one, and so must the
// version-table page that records it. A lost write would leave a gap.
TEST(ThreadGuest, DirtyRingNeverLosesACompletedWrite) {
  auto g = make_guest("vcpus=4,ram=32M,wss=100%,rate=5000,pattern=random,seed=3,ring=16");
  const uint64_t pages = g->target_pages();
  std::vector<std::vector<uint32_t>> snaps(1);
  std::vector<std::vector<bool>> reported;  // reported[k][p]: collect k reported p
  g->snapshot_versions(snaps[0]);
  ASSERT_TRUE(g->start_dirty_log());
  ASSERT_TRUE(g->start());
  auto collect = [&] {
    snaps.emplace_back();
    g->snapshot_versions(snaps.back());
    MigrationBitmap bm = make_bitmap(*g);
    uint64_t n = g->collect_dirty(bm);
    std::vector<bool> r(pages);
    uint64_t marked = 0;
    for (uint64_t p = 0; p < pages; ++p) marked += (r[p] = bm.block(0).test(p));
    EXPECT_EQ(n, marked);
    reported.push_back(std::move(r));
  };
  reported.emplace_back(pages);  // index 0: nothing collected before S[0]
  auto end = std::chrono::steady_clock::now() + 400ms;
  while (std::chrono::steady_clock::now() < end) {
    std::this_thread::sleep_for(4ms);
    collect();
  }
  g->pause();
  collect();
  const size_t k_last = snaps.size() - 1;
  // latest[p] = last collect index that reported p, checked per window from the back.
  uint64_t changed = 0, gaps = 0;
  std::string first_gap;
  for (uint64_t p = 0; p < pages; ++p) {
    for (size_t k = 1; k <= k_last; ++k) {
      if (snaps[k][p] == snaps[k - 1][p]) continue;
      ++changed;
      for (uint64_t page : {p, p / 1024}) {
        bool ok = false;
        for (size_t j = k - 1; j <= k_last && !ok; ++j) ok = reported[j][page];
        if (!ok && gaps++ == 0)
          first_gap = "page " + std::to_string(page) + " (write to " + std::to_string(p) +
                      " seen in window " + std::to_string(k) + ") never reported after";
      }
    }
  }
  EXPECT_EQ(gaps, 0u) << first_gap;
  EXPECT_GT(changed, 500u);
  uint64_t exits = 0;
  for (uint32_t v = 0; v < g->vcpus(); ++v) exits += g->vcpu_stats(v).ring_full_exits;
  std::printf("%zu collects, %lu page changes, %lu ring-full exits\n", reported.size() - 1,
              static_cast<unsigned long>(changed), static_cast<unsigned long>(exits));
  // After the final collect nothing is pending, and the guest's memory is consistent.
  MigrationBitmap bm = make_bitmap(*g);
  EXPECT_EQ(g->collect_dirty(bm), 0u);
  VerifyReport rep = g->verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
}

TEST(ThreadGuest, RingFullExitStallsAndIsCounted) {
  auto g = make_guest("vcpus=1,ram=16M,wss=100%,pattern=sequential,ring=16");
  ASSERT_TRUE(g->start_dirty_log());
  g->set_ring_full_penalty(0, 100);
  ASSERT_TRUE(g->run_ops(200));  // nobody collects: the ring (16) fills again and again
  VcpuStats s = g->vcpu_stats(0);
  EXPECT_EQ(s.ops, 200u);
  EXPECT_EQ(s.writes, 200u);
  EXPECT_GE(s.ring_full_exits, 10u);
  EXPECT_GT(s.stall_ns, 0u);
  EXPECT_GE(s.penalty_ns, s.ring_full_exits * 100'000 / 2);  // slept ~100 us per exit
  // Everything the vCPU pushed is still reported: 200 data pages + the table page.
  MigrationBitmap bm = make_bitmap(*g);
  EXPECT_EQ(g->collect_dirty(bm), 201u);
  // The table page is logged again after each harvest re-arms it (as KVM_RESET_DIRTY_RINGS
  // does), once per ring round at most.
  EXPECT_GE(s.dirty_pushes, 201u);
  EXPECT_LE(s.dirty_pushes, 201u + s.ring_full_exits);
  for (uint64_t p = g->table_pages(); p < g->table_pages() + 200; ++p)
    ASSERT_TRUE(bm.block(0).test(p)) << p;
}

TEST(ThreadGuest, PrefillWritesEveryWorkingSetPageOnce) {
  auto g = make_guest("vcpus=2,ram=16M,wss=50%,rate=10,pattern=random,seed=5");
  ASSERT_TRUE(g->prefill());
  const uint64_t first = g->table_pages(), end = first + g->working_set_pages();
  for (uint64_t p = first; p < end; ++p) ASSERT_EQ(g->page_version(p), 1u) << "page " << p;
  EXPECT_EQ(g->page_version(end), 0u) << "pages outside the working set stay unwritten";
  VerifyReport rep = g->verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
  ASSERT_TRUE(g->run_ops(50));  // the vCPUs carry on from version 1
  EXPECT_EQ(g->verify().mismatches, 0u);
  ASSERT_TRUE(g->start());
  EXPECT_FALSE(g->prefill()) << "refused while running";
  g->pause();
}

TEST(ThreadGuest, NoTrackingWhenDirtyLogIsOff) {
  auto g = make_guest("vcpus=2,ram=8M,ring=16");
  ASSERT_TRUE(g->run_ops(100));
  MigrationBitmap bm = make_bitmap(*g);
  EXPECT_EQ(g->collect_dirty(bm), 0u);
  EXPECT_EQ(g->vcpu_stats(0).dirty_pushes, 0u);
  EXPECT_EQ(g->vcpu_stats(0).ring_full_exits, 0u);
  ASSERT_TRUE(g->start_dirty_log());
  ASSERT_TRUE(g->run_ops(110));
  g->stop_dirty_log();
  EXPECT_EQ(g->collect_dirty(bm), 0u);
}

TEST(ThreadGuest, PauseReallyStopsWrites) {
  auto g = make_guest("vcpus=2,ram=16M,rate=4000,pattern=random,seed=5");
  ASSERT_TRUE(g->start());
  EXPECT_TRUE(g->running());
  std::this_thread::sleep_for(30ms);
  g->pause();
  EXPECT_FALSE(g->running());
  std::vector<uint32_t> before, after;
  g->snapshot_versions(before);
  uint64_t ops0 = g->vcpu_stats(0).ops + g->vcpu_stats(1).ops;
  EXPECT_GT(ops0, 0u);
  EXPECT_EQ(g->verify().mismatches, 0u) << "paused between writes: memory is consistent";
  std::this_thread::sleep_for(30ms);
  g->snapshot_versions(after);
  EXPECT_EQ(before, after);
  EXPECT_EQ(g->vcpu_stats(0).ops + g->vcpu_stats(1).ops, ops0);
  ASSERT_TRUE(g->start());
  std::this_thread::sleep_for(30ms);
  g->pause();
  EXPECT_GT(g->vcpu_stats(0).ops + g->vcpu_stats(1).ops, ops0);
  VerifyReport rep = g->verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
  EXPECT_EQ(rep.pages_checked, g->target_pages() - g->table_pages());
}

TEST(ThreadGuest, RateLimitIsRoughlyRespected) {
  auto g = make_guest("vcpus=1,ram=8M,rate=2000");
  ASSERT_TRUE(g->start());
  std::this_thread::sleep_for(100ms);
  g->pause();
  uint64_t ops = g->vcpu_stats(0).ops;
  EXPECT_GT(ops, 50u);
  EXPECT_LT(ops, 600u);  // 200 expected; generous for a loaded 2-core machine
}

TEST(ThreadGuest, DescribeAndLayout) {
  auto g = make_guest("vcpus=2,ram=64M,wss=25%,pattern=hotset");
  EXPECT_EQ(g->describe(), "threads: 2 vCPUs, 64 MiB, 4K pages, wss 16 MiB, hotset 90/10, max rate");
  Layout l = g->layout();
  ASSERT_EQ(l.blocks.size(), 1u);
  EXPECT_EQ(l.blocks[0].size, 64u << 20);
  EXPECT_EQ(g->table_pages(), 16u);
  EXPECT_EQ(g->working_set_pages(), 4096u);
}

}  // namespace
}  // namespace tern
