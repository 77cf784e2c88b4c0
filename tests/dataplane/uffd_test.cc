// Userfault against the real kernel: 4 KiB anonymous and 2 MiB hugetlb RAM blocks, faulting
// threads that must stay blocked until a whole host page is placed. Skips (with the reason)
// when userfaultfd or hugetlb pages are unavailable; valgrind cannot run these.
#include "dataplane/uffd.h"

#include <gtest/gtest.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <functional>
#include <thread>
#include <vector>

#include "dataplane/ram_block.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;
constexpr auto kDeadline = std::chrono::seconds(10);
constexpr uint64_t kTestHugePages = 4;  // never more than 64 in tests

// Word w of target page `page` for pattern `seed`: distinct per page and per seed.
uint64_t pattern_word(uint32_t seed, uint64_t page, uint64_t w) {
  return (uint64_t{seed} << 48) ^ (page << 20) ^ (w * 0x9e3779b97f4a7c15ull >> 20) ^ 0x5a5a;
}

std::vector<uint64_t> make_pattern(size_t len, uint32_t seed) {
  std::vector<uint64_t> v(len / 8);
  for (size_t i = 0; i < v.size(); ++i) v[i] = pattern_word(seed, i / 512, i % 512);
  return v;
}

// Index of the first 4 KiB target page of p that does not hold the pattern, or -1.
int first_bad_page(const uint8_t* p, size_t len, uint32_t seed) {
  for (size_t page = 0; page < len / kSmallPage; ++page) {
    const auto* w = reinterpret_cast<const volatile uint64_t*>(p + page * kSmallPage);
    for (uint64_t i = 0; i < kSmallPage / 8; ++i)
      if (w[i] != pattern_word(seed, page, i)) return static_cast<int>(page);
  }
  return -1;
}

bool all_zero(const uint8_t* p, size_t len) {
  for (size_t i = 0; i < len; ++i)
    if (p[i] != 0) return false;
  return true;
}

bool wait_until(const std::function<bool()>& done) {
  const auto end = Clock::now() + kDeadline;
  while (!done()) {
    if (Clock::now() > end) return false;
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  return true;
}

// Reads a byte of a page that may be missing: blocks in the kernel until the page is placed.
uint8_t touch(const uint8_t* p) { return *reinterpret_cast<const volatile uint8_t*>(p); }

class UffdTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto u = Userfault::open();
    if (!u) GTEST_SKIP() << "userfaultfd unavailable: " << u.status().to_string();
    uffd_ = std::move(u.value());
  }

  // Joins the threads; if they are still blocked after the deadline, fails, and closes the
  // userfaultfd, which makes the kernel release every waiter, so the test ends instead of hanging.
  void join_all(std::vector<std::thread>& threads, const std::atomic<int>& finished) {
    if (!wait_until([&] { return finished.load() == static_cast<int>(threads.size()); })) {
      ADD_FAILURE() << finished.load() << " of " << threads.size()
                    << " faulting threads still blocked after the deadline";
      uffd_.reset();
    }
    for (auto& t : threads) t.join();
  }

  // Collects fault addresses until `want` have arrived (or the deadline passes).
  std::vector<uint64_t> wait_faults(size_t want) {
    std::vector<uint64_t> got;
    uint64_t buf[16];
    wait_until([&] {
      int n = uffd_->read_faults(buf, 16);
      EXPECT_GE(n, 0);
      for (int i = 0; i < n; ++i) got.push_back(buf[i]);
      return got.size() >= want;
    });
    return got;
  }

  std::unique_ptr<RamBlock> make_block(uint64_t size, uint32_t host_page) {
    auto b = RamBlock::create("uffd_test", size, host_page);
    EXPECT_TRUE(b) << b.status().to_string();
    if (!b) return nullptr;
    Status s = uffd_->register_range(b.value()->base(), size, host_page);
    EXPECT_TRUE(s) << s.to_string();
    return s ? std::move(b.value()) : nullptr;
  }

  std::unique_ptr<Userfault> uffd_;
};

class UffdHugeTest : public UffdTest {
 protected:
  void SetUp() override {
    UffdTest::SetUp();
    if (IsSkipped()) return;
    auto r = reserve_huge_pages(kTestHugePages);
    if (!r) GTEST_SKIP() << "hugetlb pages unavailable: " << r.status().to_string();
  }

  std::unique_ptr<RamBlock> make_huge_block(uint64_t size) {
    auto b = RamBlock::create("uffd_huge_test", size, kHugePage);
    if (!b) return nullptr;  // pages taken by a concurrent user: caller skips
    Status s = uffd_->register_range(b.value()->base(), size, kHugePage);
    EXPECT_TRUE(s) << s.to_string();
    return s ? std::move(b.value()) : nullptr;
  }
};

TEST_F(UffdTest, ReadFaultsIsEmptyWhenIdle) {
  uint64_t addrs[8];
  EXPECT_EQ(uffd_->read_faults(addrs, 8), 0);
  auto block = make_block(4 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  EXPECT_EQ(uffd_->read_faults(addrs, 8), 0);
  EXPECT_EQ(uffd_->read_faults(addrs, 0), 0);
}

TEST_F(UffdTest, ToucherBlocksUntilCopyInstallsExactContent) {
  auto block = make_block(4 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  uint8_t* page = block->base() + kSmallPage;
  const auto src = make_pattern(kSmallPage, 7);
  std::vector<uint8_t> seen(kSmallPage);
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    touch(page + 123);
    std::memcpy(seen.data(), page, kSmallPage);
    finished.fetch_add(1);
  });

  auto faults = wait_faults(1);
  ASSERT_EQ(faults.size(), 1u);
  EXPECT_EQ(faults[0], reinterpret_cast<uint64_t>(page));  // rounded down to the page
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(finished.load(), 0) << "the toucher ran before its page was placed";

  EXPECT_EQ(uffd_->copy(page, src.data(), kSmallPage), 0);
  join_all(threads, finished);
  EXPECT_EQ(std::memcmp(seen.data(), src.data(), kSmallPage), 0);
  EXPECT_EQ(first_bad_page(page, kSmallPage, 7), -1);
}

TEST_F(UffdTest, SecondCopyIsEexistAndKeepsTheFirst) {
  auto block = make_block(2 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  const auto a = make_pattern(kSmallPage, 1);
  const auto b = make_pattern(kSmallPage, 2);
  EXPECT_EQ(uffd_->copy(block->base(), a.data(), kSmallPage), 0);
  EXPECT_EQ(uffd_->copy(block->base(), b.data(), kSmallPage), -EEXIST);
  EXPECT_EQ(uffd_->zero(block->base(), kSmallPage, kSmallPage), -EEXIST);
  EXPECT_EQ(first_bad_page(block->base(), kSmallPage, 1), -1);
}

TEST_F(UffdTest, EexistStillWakesWaiters) {
  auto block = make_block(2 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  uint8_t* page = block->base();
  const auto first = make_pattern(kSmallPage, 3);
  const auto second = make_pattern(kSmallPage, 4);
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    touch(page);
    finished.fetch_add(1);
  });
  ASSERT_EQ(wait_faults(1).size(), 1u);

  // Place the page without waking (as a racing placer might), then a late copy() must wake.
  uffdio_copy c{};
  c.dst = reinterpret_cast<uint64_t>(page);
  c.src = reinterpret_cast<uint64_t>(first.data());
  c.len = kSmallPage;
  c.mode = UFFDIO_COPY_MODE_DONTWAKE;
  ASSERT_EQ(ioctl(uffd_->fd(), UFFDIO_COPY, &c), 0) << std::strerror(errno);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(finished.load(), 0) << "DONTWAKE woke the toucher";

  EXPECT_EQ(uffd_->copy(page, second.data(), kSmallPage), -EEXIST);
  join_all(threads, finished);
  EXPECT_EQ(first_bad_page(page, kSmallPage, 3), -1);
}

TEST_F(UffdTest, WakeReleasesWaitersOfAPlacedPage) {
  auto block = make_block(kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  const auto src = make_pattern(kSmallPage, 5);
  std::atomic<int> finished{0};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    touch(block->base() + 9);
    finished.fetch_add(1);
  });
  ASSERT_EQ(wait_faults(1).size(), 1u);
  uffdio_copy c{};
  c.dst = reinterpret_cast<uint64_t>(block->base());
  c.src = reinterpret_cast<uint64_t>(src.data());
  c.len = kSmallPage;
  c.mode = UFFDIO_COPY_MODE_DONTWAKE;
  ASSERT_EQ(ioctl(uffd_->fd(), UFFDIO_COPY, &c), 0) << std::strerror(errno);
  EXPECT_EQ(uffd_->wake(block->base(), kSmallPage), 0);
  join_all(threads, finished);
}

TEST_F(UffdTest, ManyThreadsOnOnePageAreAllWokenByOneCopy) {
  constexpr int kThreads = 8;
  auto block = make_block(kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  const auto src = make_pattern(kSmallPage, 11);
  std::atomic<int> finished{0};
  std::atomic<int> bad{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      touch(block->base() + t * 500);
      if (first_bad_page(block->base(), kSmallPage, 11) != -1) bad.fetch_add(1);
      finished.fetch_add(1);
    });
  }
  // Every blocked thread queues its own fault message: once all have arrived, all are asleep.
  auto faults = wait_faults(kThreads);
  ASSERT_GE(faults.size(), static_cast<size_t>(kThreads));
  for (uint64_t a : faults) EXPECT_EQ(a, reinterpret_cast<uint64_t>(block->base()));
  EXPECT_EQ(finished.load(), 0);

  EXPECT_EQ(uffd_->copy(block->base(), src.data(), kSmallPage), 0);
  join_all(threads, finished);
  EXPECT_EQ(bad.load(), 0);
}

TEST_F(UffdTest, ZeroPlacesA4KZeroPage) {
  auto block = make_block(2 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  uint8_t* page = block->base() + kSmallPage;
  std::atomic<int> finished{0};
  std::atomic<bool> zeros{false};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    touch(page + 4000);
    zeros = all_zero(page, kSmallPage);
    finished.fetch_add(1);
  });
  ASSERT_EQ(wait_faults(1).size(), 1u);
  EXPECT_EQ(uffd_->zero(page, kSmallPage, kSmallPage), 0);
  join_all(threads, finished);
  EXPECT_TRUE(zeros.load());
  const auto src = make_pattern(kSmallPage, 1);
  EXPECT_EQ(uffd_->copy(page, src.data(), kSmallPage), -EEXIST);  // the zero page is present
}

TEST_F(UffdTest, UnregisteredRangeNoLongerFaults) {
  auto block = make_block(2 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  ASSERT_TRUE(uffd_->unregister_range(block->base(), 2 * kSmallPage));
  EXPECT_EQ(touch(block->base()), 0);  // would hang this thread if still registered
  uint64_t addrs[4];
  EXPECT_EQ(uffd_->read_faults(addrs, 4), 0);
}

TEST_F(UffdTest, RegisterRejectsMisalignedRanges) {
  auto block = RamBlock::create("uffd_test", 4 * kSmallPage, kSmallPage);
  ASSERT_TRUE(block);
  Status s = uffd_->register_range(block.value()->base() + 1, kSmallPage, kSmallPage);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  s = uffd_->register_range(block.value()->base(), kSmallPage, 12345);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
}

// S2: a 2 MiB page appears all at once. Readers blocked on the first, middle and last target
// page then sweep the whole host page repeatedly; every sweep must see all 512 target pages.
TEST_F(UffdHugeTest, HugePageIsInstalledAtomically) {
  auto block = make_huge_block(kHugePage);
  if (!block) GTEST_SKIP() << "no free hugetlb page (taken by a concurrent user)";
  uint8_t* base = block->base();
  const auto src = make_pattern(kHugePage, 21);
  const int starts[] = {0, 255, 511};
  std::atomic<int> finished{0};
  std::atomic<int> partial{0};
  std::vector<std::thread> threads;
  for (int start : starts) {
    threads.emplace_back([&, start] {
      touch(base + start * kSmallPage + 64);
      for (int sweep = 0; sweep < 20; ++sweep) {
        for (int i = 0; i < 512; ++i) {  // from the touched page, wrapping around
          const uint64_t page = (start + i) % 512;
          const auto* w = reinterpret_cast<const volatile uint64_t*>(base + page * kSmallPage);
          if (w[0] != pattern_word(21, page, 0) || w[511] != pattern_word(21, page, 511))
            partial.fetch_add(1);
        }
      }
      finished.fetch_add(1);
    });
  }
  auto faults = wait_faults(std::size(starts));
  ASSERT_GE(faults.size(), std::size(starts));
  for (uint64_t a : faults) {
    EXPECT_GE(a, reinterpret_cast<uint64_t>(base));
    EXPECT_LT(a, reinterpret_cast<uint64_t>(base) + kHugePage);
    EXPECT_EQ(a % kSmallPage, 0u);
  }
  EXPECT_EQ(finished.load(), 0);

  EXPECT_EQ(uffd_->copy(base, src.data(), kHugePage), 0);
  join_all(threads, finished);
  EXPECT_EQ(partial.load(), 0) << "a reader saw a partially filled huge page";
  EXPECT_EQ(first_bad_page(base, kHugePage, 21), -1);
  EXPECT_EQ(uffd_->copy(base, src.data(), kHugePage), -EEXIST);
}

TEST_F(UffdHugeTest, ZeroPlacesA2MZeroPage) {
  auto block = make_huge_block(2 * kHugePage);
  if (!block) GTEST_SKIP() << "no free hugetlb pages (taken by a concurrent user)";
  uint8_t* page = block->base() + kHugePage;
  std::atomic<int> finished{0};
  std::atomic<bool> zeros{false};
  std::vector<std::thread> threads;
  threads.emplace_back([&] {
    touch(page + kHugePage - 1);
    zeros = all_zero(page, kHugePage);
    finished.fetch_add(1);
  });
  ASSERT_EQ(wait_faults(1).size(), 1u);
  EXPECT_EQ(uffd_->zero(page, kHugePage, kHugePage), 0);
  join_all(threads, finished);
  EXPECT_TRUE(zeros.load());
  EXPECT_EQ(uffd_->zero(page, kHugePage, kHugePage), -EEXIST);
  // The first huge page is still missing and can take a zero page too (the source is reused).
  EXPECT_EQ(uffd_->zero(block->base(), kHugePage, kHugePage), 0);
  EXPECT_TRUE(all_zero(block->base(), kHugePage));
}

TEST_F(UffdHugeTest, HugetlbRangeMustBe2MAligned) {
  auto b = RamBlock::create("uffd_huge_test", kHugePage, kHugePage);
  if (!b) GTEST_SKIP() << b.status().to_string();
  Status s = uffd_->register_range(b.value()->base() + kSmallPage, kSmallPage, kHugePage);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  // Registered as 4 KiB pages, hugetlb memory lacks UFFDIO_ZEROPAGE: refused with a reason.
  s = uffd_->register_range(b.value()->base(), kHugePage, kSmallPage);
  EXPECT_FALSE(s);
}

}  // namespace
}  // namespace tern
