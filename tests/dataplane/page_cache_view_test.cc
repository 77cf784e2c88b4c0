// Zero-copy postcopy placement against the real kernel: file-backed guest RAM (4 KiB memfd,
// 2 MiB hugetlb memfd) registered for missing and minor faults; pages written through tern's
// own mapping (PageCacheView) stay invisible to a faulting thread until UFFDIO_CONTINUE
// installs the whole host page. Skips with the reason where the kernel lacks minor faults.
#include "dataplane/page_cache_view.h"

#include <gtest/gtest.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <thread>

#include "dataplane/uffd.h"

namespace tern {
namespace {

// Reads a byte of a page that may be missing: blocks in the kernel until the page is placed.
uint8_t touch(const uint8_t* p) { return *reinterpret_cast<const volatile uint8_t*>(p); }

class PageCacheViewTest : public ::testing::TestWithParam<uint32_t> {
 protected:
  uint32_t page() const { return GetParam(); }
  void SetUp() override {
    if (page() == kHugePage)
      if (auto r = reserve_huge_pages(8); !r)
        GTEST_SKIP() << "hugetlb pages unavailable: " << r.status().to_string();
    auto u = Userfault::open();
    if (!u) GTEST_SKIP() << "userfaultfd unavailable: " << u.status().to_string();
    uffd_ = std::move(*u);
    if (std::string why = uffd_->minor_faults_missing(page()); !why.empty()) GTEST_SKIP() << why;
    auto b = RamBlock::create_shared("pcv", 4 * uint64_t{page()}, page());
    ASSERT_TRUE(b) << b.status().to_string();
    block_ = std::move(*b);
    auto v = PageCacheView::map(*block_);
    ASSERT_TRUE(v) << v.status().to_string();
    view_ = std::move(*v);
    Status s = uffd_->register_range(block_->base(), block_->size(), page(), /*minor=*/true);
    ASSERT_TRUE(s) << s.to_string();
  }
  void TearDown() override {
    if (uffd_ && block_) (void)uffd_->unregister_range(block_->base(), block_->size());
  }
  // Waits (bounded) for n faults; returns how many came.
  int faults(int n) {
    uint64_t a[8];
    int got = 0;
    for (int i = 0; i < 5000 && got < n; ++i) {
      int r = uffd_->read_faults(a, 8);
      if (r > 0) got += r;
      else std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    return got;
  }

  std::unique_ptr<Userfault> uffd_;
  std::unique_ptr<RamBlock> block_;
  std::unique_ptr<PageCacheView> view_;
};

TEST_P(PageCacheViewTest, WrittenPageIsInvisibleUntilInstalledWhole) {
  const uint64_t off = page();  // host page 1
  uint8_t* guest = block_->base() + off;
  std::atomic<int> seen{-1};
  std::thread reader([&] { seen.store(touch(guest + page() - 1)); });  // last byte
  ASSERT_EQ(faults(1), 1) << "a hole faults as missing";
  std::memset(view_->base() + off, 0x5a, page() / 2);  // half the host page in the page cache
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_EQ(seen.load(), -1) << "the thread saw a page that was not installed";
  std::memset(view_->base() + off + page() / 2, 0xa5, page() / 2);
  ASSERT_EQ(uffd_->install(guest, page()), 0);
  reader.join();
  EXPECT_EQ(seen.load(), 0xa5);
  EXPECT_EQ(touch(guest), 0x5a);
  EXPECT_EQ(uffd_->install(guest, page()), -EEXIST);
}

TEST_P(PageCacheViewTest, AllocatedHoleInstallsAsZeros) {
  uint8_t* guest = block_->base() + 2 * uint64_t{page()};
  std::atomic<int> seen{-1};
  std::thread reader([&] { seen.store(touch(guest + 7)); });
  ASSERT_EQ(faults(1), 1);
  ASSERT_EQ(view_->allocate(2 * uint64_t{page()}, page()), 0);
  ASSERT_EQ(uffd_->install(guest, page()), 0);
  reader.join();
  EXPECT_EQ(seen.load(), 0);
}

// RamBlock::discard punches the page out of the file: every mapping of it faults again, and
// the old data is gone from the page cache.
TEST_P(PageCacheViewTest, DiscardedPageFaultsAgainAndReadsZeroAfterAllocate) {
  uint8_t* guest = block_->base();
  std::memset(view_->base(), 0x33, page());
  ASSERT_EQ(uffd_->install(guest, page()), 0);
  ASSERT_EQ(touch(guest), 0x33);
  ASSERT_TRUE(block_->discard(0, page()));
  std::atomic<int> seen{-1};
  std::thread reader([&] { seen.store(touch(guest)); });
  ASSERT_EQ(faults(1), 1);
  ASSERT_EQ(view_->allocate(0, page()), 0);
  ASSERT_EQ(uffd_->install(guest, page()), 0);
  reader.join();
  EXPECT_EQ(seen.load(), 0);
}

INSTANTIATE_TEST_SUITE_P(Pages, PageCacheViewTest, ::testing::Values(kSmallPage, kHugePage),
                         [](const ::testing::TestParamInfo<uint32_t>& i) {
                           return i.param == kHugePage ? "memfd_2M" : "memfd_4K";
                         });

TEST(PageCacheView, AnonymousMemoryHasNoPageCache) {
  auto b = RamBlock::create("anon", 4 * kSmallPage, kSmallPage);
  ASSERT_TRUE(b) << b.status().to_string();
  auto v = PageCacheView::map(**b);
  ASSERT_FALSE(v);
  EXPECT_NE(v.status().message().find("anonymous"), std::string::npos);
}

}  // namespace
}  // namespace tern
