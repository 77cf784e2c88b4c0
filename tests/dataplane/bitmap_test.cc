#include "dataplane/bitmap.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

namespace tern {
namespace {

TEST(AtomicBitmap, SetTestClearAndScan) {
  AtomicBitmap b(200);
  EXPECT_EQ(b.find_next_set(0), 200u);
  b.set(3);
  b.set(64);
  b.set(199);
  EXPECT_TRUE(b.test(64));
  EXPECT_EQ(b.count(), 3u);
  EXPECT_EQ(b.find_next_set(0), 3u);
  EXPECT_EQ(b.find_next_set(4), 64u);
  EXPECT_EQ(b.find_next_set(65), 199u);
  EXPECT_TRUE(b.test_and_clear(64));
  EXPECT_FALSE(b.test_and_clear(64));
  EXPECT_EQ(b.find_next_set(4), 199u);
}

TEST(AtomicBitmap, SetAllStaysInsideSize) {
  AtomicBitmap b(70);
  b.set_all();
  EXPECT_EQ(b.count(), 70u);
  EXPECT_EQ(b.find_next_set(69), 69u);
  EXPECT_EQ(b.find_next_set(70), 70u);
  b.clear_all();
  EXPECT_EQ(b.count(), 0u);
}

TEST(MigrationBitmap, MarksHostPageOfTargetPage) {
  // Block 0: 4 MiB of 2 MiB pages; block 1: 64 KiB of 4 KiB pages.
  MigrationBitmap m({2u << 20, 4096}, {4u << 20, 64u << 10});
  m.mark_target(0, 513);  // second huge page
  m.mark_target(1, 7);
  EXPECT_EQ(m.dirty_host_pages(), 2u);
  EXPECT_EQ(m.dirty_bytes(), (2u << 20) + 4096u);
  EXPECT_TRUE(m.block(0).test(1));
  EXPECT_TRUE(m.claim(0, 1));
  EXPECT_FALSE(m.claim(0, 1));
}

// A host page is claimed by exactly one of many racing channels per dirty instance (S2).
TEST(MigrationBitmap, ExactlyOneClaimPerDirtyInstance) {
  constexpr size_t kPages = 4096;
  MigrationBitmap m({4096}, {kPages * 4096});
  for (int round = 0; round < 20; ++round) {
    m.set_all();
    std::vector<std::atomic<int>> wins(kPages);
    std::vector<std::thread> threads;
    for (int t = 0; t < 4; ++t)
      threads.emplace_back([&] {
        for (size_t p = 0; p < kPages; ++p)
          if (m.claim(0, p)) wins[p].fetch_add(1);
      });
    for (auto& t : threads) t.join();
    for (size_t p = 0; p < kPages; ++p) ASSERT_EQ(wins[p].load(), 1) << "page " << p;
  }
}

}  // namespace
}  // namespace tern
