// S2: the destination assembles a huge page in its channel's staging page and installs it
// whole; a guest thread never sees part of it. A host page travels wholly on one channel.
// Each receiver test runs on anonymous hugetlb RAM (staged, UFFDIO_COPY) and on a hugetlb
// memfd (page cache landing, UFFDIO_CONTINUE: issue 12's zero-copy placement).
#include <gtest/gtest.h>
#include <sys/stat.h>

#include <atomic>
#include <map>
#include <set>
#include <thread>

#include "dataplane/engine/receiver.h"
#include "dataplane/engine/recv_state.h"
#include "dataplane/worker.h"
#include "tests/dataplane/engine_fixture.h"

namespace tern::engine {
namespace {

using namespace testing_support;

class ReceiverTest : public ::testing::TestWithParam<RamBacking> {
 protected:
  bool page_cache() const { return GetParam() == RamBacking::kMemfd; }
  void SetUp() override {
    auto r = reserve_huge_pages(8);
    if (!r.is_ok()) GTEST_SKIP() << "needs 2 MiB hugetlb pages: " << r.status().to_string();
    auto b = RamBlock::create("ram", 2 * kHugePage, kHugePage, GetParam());
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    block_ = std::move(*b);
    layout_.blocks.push_back({"ram", block_->size(), kHugePage});
    state_ = std::make_unique<RecvState>(std::vector<RamBlock*>{block_.get()}, layout_);
    auto u = Userfault::open();
    ASSERT_TRUE(u.is_ok()) << u.status().to_string();
    uffd_ = std::move(*u);
    state_->page_cache.resize(1);
    if (page_cache()) {
      if (std::string why = uffd_->minor_faults_missing(kHugePage); !why.empty())
        GTEST_SKIP() << why;
      auto view = PageCacheView::map(*block_);
      ASSERT_TRUE(view.is_ok()) << view.status().to_string();
      state_->page_cache[0] = std::move(*view);
      state_->take_received();
    }
    Status reg = uffd_->register_range(block_->base(), block_->size(), kHugePage, page_cache());
    ASSERT_TRUE(reg.is_ok()) << reg.to_string();
    state_->uffd = uffd_.get();
    static int n = 0;
    wired_ = wire_loopback("staging-" + std::to_string(++n), 3);
    receiver_ = std::make_unique<ReceiverPoller>(*state_, wired_.dst[2].get());
    receiver_->enter_postcopy();
  }
  void TearDown() override {
    if (uffd_ && block_) (void)uffd_->unregister_range(block_->base(), block_->size());
  }
  // Posts target pages [first, first+count) of host page hp, content = page number + 1.
  void send(uint64_t hp, uint32_t first, uint32_t count, bool end, int fill = 0) {
    static std::vector<uint8_t> buf(kHugePage);
    for (uint32_t t = first; t < first + count; ++t)
      std::memset(buf.data() + t * kTargetPageSize, fill ? fill : static_cast<int>(t % 250 + 1),
                  kTargetPageSize);
    TxFrame f{make_header(FrameType::kPage, 0, hp * kHugePage + first * kTargetPageSize,
                          count * kTargetPageSize, end ? kFlagHostPageEnd : 0, 1, 2),
              buf.data() + first * kTargetPageSize};
    ASSERT_EQ(wired_.src[2]->post(&f, 1), 1u);
    ASSERT_TRUE(wired_.src[2]->flush());
  }

  std::unique_ptr<RamBlock> block_;
  Layout layout_;
  std::unique_ptr<RecvState> state_;
  std::unique_ptr<Userfault> uffd_;
  Wired wired_;
  std::unique_ptr<ReceiverPoller> receiver_;
};

TEST_P(ReceiverTest, GuestThreadsNeverSeeAPartialHugePage) {
  Worker worker("test-recv");
  worker.add(receiver_.get());
  worker.start();
  std::atomic<int> bad{0}, woke{0};
  auto reader = [&](uint32_t first_touch) {
    const uint8_t* page = block_->base();
    volatile uint8_t v = page[first_touch * kTargetPageSize];  // faults until placed
    (void)v;
    woke.fetch_add(1);
    for (uint32_t t = 0; t < 512; ++t)
      for (uint32_t off : {0u, 4095u})
        if (page[t * kTargetPageSize + off] != t % 250 + 1) bad.fetch_add(1);
  };
  std::thread last(reader, 511), first(reader, 0), middle(reader, 256);
  // The page arrives slowly, 32 chunks of 64 KiB, while three threads wait on it.
  for (uint32_t c = 0; c < 32; ++c) {
    send(0, c * 16, 16, c == 31);
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    if (c < 31) {
      EXPECT_EQ(woke.load(), 0) << "a thread woke before the page was whole";
    }
  }
  last.join();
  first.join();
  middle.join();
  worker.stop();
  EXPECT_EQ(bad.load(), 0);
  EXPECT_EQ(woke.load(), 3);
  EXPECT_EQ(state_->counters.placed_pages.load(), 1u);
  EXPECT_EQ(state_->counters.installed_pages.load(), page_cache() ? 1u : 0u);
  EXPECT_TRUE(state_->received.block(0).test(0));
}

TEST_P(ReceiverTest, AllZeroHugePageIsPlacedAsZerosOrLeftAHole) {
  TxFrame z{make_header(FrameType::kZero, 0, kHugePage, kHugePage, kFlagHostPageEnd, 1, 2),
            nullptr};
  ASSERT_EQ(wired_.src[2]->post(&z, 1), 1u);
  ASSERT_TRUE(wired_.src[2]->flush());
  for (int i = 0; i < 100 && !state_->received.block(0).test(1); ++i) receiver_->poll();
  ASSERT_TRUE(state_->received.block(0).test(1));
  if (page_cache()) {
    // Nobody waits on it: the hole stays a hole (nothing allocated; a later touch faults and
    // the fault poller installs it locally).
    struct stat st {};
    ASSERT_EQ(fstat(block_->fd(), &st), 0);
    EXPECT_EQ(st.st_blocks, 0) << "the memfd holds allocated pages";
    EXPECT_EQ(state_->counters.installed_pages.load(), 0u);
    return;
  }
  for (uint64_t off = 0; off < kHugePage; off += 512) ASSERT_EQ(block_->base()[kHugePage + off], 0);
}

// A page that comes twice (a request answered again while the first answer was queued) is
// dropped the second time: the guest may have written to it since. In page cache landing the
// duplicate's payload must not even reach the page cache.
TEST_P(ReceiverTest, DuplicatePageNeverOverwritesWhatTheGuestWrote) {
  send(0, 0, 512, true);
  for (int i = 0; i < 100 && !state_->received.block(0).test(0); ++i) receiver_->poll();
  ASSERT_TRUE(state_->received.block(0).test(0));
  block_->base()[100] = 0xee;  // the guest writes
  send(0, 0, 256, false, 0x77);  // the duplicate, in two pieces
  send(0, 256, 256, true, 0x77);
  for (int i = 0; i < 20; ++i) receiver_->poll();
  ASSERT_FALSE(receiver_->failed()) << receiver_->error().to_string();
  EXPECT_EQ(block_->base()[100], 0xee);
  EXPECT_EQ(block_->base()[5000], 1 + 1);  // target page 1 of the first copy
  EXPECT_EQ(state_->counters.placed_pages.load(), 1u);
}

// A second host page may not start on a channel before the first is complete: that would be
// a huge page split across channels (or mixed in one staging page).
TEST_P(ReceiverTest, InterleavedHostPagesOnOneChannelFailTheChannel) {
  send(0, 0, 16, false);
  send(1, 0, 16, false);
  for (int i = 0; i < 100 && !receiver_->failed(); ++i) receiver_->poll();
  ASSERT_TRUE(receiver_->failed());
  EXPECT_NE(receiver_->error().message().find("incomplete"), std::string::npos)
      << receiver_->error().to_string();
  EXPECT_EQ(state_->counters.placed_pages.load(), 0u);
}

INSTANTIATE_TEST_SUITE_P(Backing, ReceiverTest,
                         ::testing::Values(RamBacking::kAnonymous, RamBacking::kMemfd),
                         [](const ::testing::TestParamInfo<RamBacking>& i) {
                           return i.param == RamBacking::kMemfd ? "memfd_page_cache"
                                                                : "anonymous_staged";
                         });

// Source side: in a whole round over two bulk channels, every host page is sent exactly once,
// wholly on one channel, its frames contiguous in that channel's stream.
TEST(SenderKeepsHostPagesWhole, HostPageNeverSplitAcrossChannels) {
  auto r = reserve_huge_pages(20);
  if (!r.is_ok()) GTEST_SKIP() << "needs 2 MiB hugetlb pages: " << r.status().to_string();
  auto b = RamBlock::create("ram", 16 * kHugePage, kHugePage);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  for (uint64_t i = 0; i < (*b)->size(); i += 3 * kTargetPageSize) (*b)->base()[i] = 1;
  Layout layout;
  layout.blocks.push_back({"ram", (*b)->size(), kHugePage});
  std::vector<uint8_t> dest((*b)->size());
  Landing landing({{dest.data(), dest.size(), kHugePage}});
  Wired w = wire_loopback("split-src", 4);
  for (auto& c : w.dst) c->set_landing(&landing);
  SendState state({b->get()}, 2);
  SendCounters counters;
  state.dirty.set_all();
  state.round = 1;
  SenderPoller s0(state, counters, layout, w.src[1].get(), {{w.src[2].get(), 0}}, 0.5);
  SenderPoller s1(state, counters, layout, nullptr, {{w.src[3].get(), 1}}, 0.5);
  std::map<uint64_t, uint32_t> channel_of;
  std::map<uint64_t, int> completions;
  uint64_t current[4] = {~0ull, ~0ull, ~0ull, ~0ull};
  for (int i = 0; i < 5000; ++i) {
    s0.poll();
    s1.poll();
    for (uint32_t c : {2u, 3u}) {
      for (const Seen& f : drain(*w.dst[c])) {
        if (f.hdr.type == static_cast<uint8_t>(FrameType::kRoundEnd)) continue;
        uint64_t hp = f.hdr.offset / kHugePage;
        auto [it, fresh] = channel_of.emplace(hp, c);
        EXPECT_EQ(it->second, c) << "host page " << hp << " on two channels";
        if (current[c] != ~0ull) {
          EXPECT_EQ(current[c], hp) << "pages interleaved on channel " << c;
        }
        current[c] = hp;
        if (f.hdr.flags & kFlagHostPageEnd) {
          completions[hp]++;
          current[c] = ~0ull;
        }
      }
    }
    if (state.slots[0].round_done == 1 && state.slots[1].round_done == 1) break;
  }
  EXPECT_EQ(completions.size(), 16u);
  for (auto& [hp, n] : completions) EXPECT_EQ(n, 1) << "host page " << hp;
  std::set<uint32_t> used;
  for (auto& [hp, c] : channel_of) used.insert(c);
  EXPECT_EQ(used.size(), 2u) << "both channels should carry pages";
}

}  // namespace
}  // namespace tern::engine
