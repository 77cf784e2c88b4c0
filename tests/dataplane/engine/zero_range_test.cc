// Never-populated guest memory: the source learns it from RamBlock::populated() without reading
// it, sends one zero-range frame per run, and the destination writes nothing for it. A page
// written later is sent in a later round; a hostile zero range fails the channel. Page runs
// (populated pages claimed together in precopy) ride the same fixture.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <unistd.h>

#include <vector>
#include <string>

#include "dataplane/engine/receiver.h"
#include "dataplane/engine/recv_state.h"
#include "tests/dataplane/engine_fixture.h"

namespace tern::engine {
namespace {

using namespace testing_support;

constexpr uint64_t kPages = 4096;  // 16 MiB of 4 KiB pages

// 4 KiB pages without transparent huge pages, so that one write populates one page.
std::unique_ptr<RamBlock> small_block(uint64_t pages) {
  auto b = RamBlock::create("ram", pages * kSmallPage, kSmallPage);
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_TRUE((*b)->use_small_pages().is_ok());
  return std::move(*b);
}

uint64_t populated_count(const RamBlock& b) {
  std::vector<uint64_t> bits((b.host_pages() + 63) / 64);
  b.populated(0, b.host_pages(), bits.data());
  uint64_t n = 0;
  for (uint64_t w : bits) n += static_cast<uint64_t>(__builtin_popcountll(w));
  return n;
}

// Pages of [base, base + len) resident in memory (mincore): what a query must not change. Not
// the process's minor-fault count, which a sanitizer's own bookkeeping moves.
uint64_t resident_pages(const uint8_t* base, uint64_t len) {
  std::vector<unsigned char> v(len / kSmallPage);
  if (mincore(const_cast<uint8_t*>(base), len, v.data()) != 0) return ~uint64_t{0};
  uint64_t n = 0;
  for (unsigned char c : v) n += c & 1;
  return n;
}

TEST(Populated, AnonymousMemoryReportsWrittenPagesOnlyAndFaultsNothing) {
  auto b = small_block(kPages);
  EXPECT_EQ(populated_count(*b), 0u);
  b->base()[3 * kSmallPage] = 1;
  b->base()[700 * kSmallPage + 5] = 1;
  std::vector<uint64_t> bits(kPages / 64);
  b->populated(0, kPages, bits.data());  // once first: this thread's stack and buffers
  const uint64_t before = resident_pages(b->base(), b->size());
  b->populated(0, kPages, bits.data());
  EXPECT_EQ(resident_pages(b->base(), b->size()), before)
      << "asking must not fault guest memory in";
  EXPECT_EQ(populated_count(*b), 2u);
  EXPECT_TRUE(b->populated(3));
  EXPECT_TRUE(b->populated(700));
  EXPECT_FALSE(b->populated(4));
  // A window that starts mid-block is indexed from its first page.
  uint64_t w[2] = {~0ull, ~0ull};
  b->populated(690, 20, w);
  EXPECT_EQ(w[0], uint64_t{1} << 10);
}

TEST(Populated, FileBackedMemoryAsksForHoles) {
  int fd = memfd_create("tern-populated-test", MFD_CLOEXEC);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(ftruncate(fd, 64 * kSmallPage), 0);
  auto b = RamBlock::map_fd("memfd", fd, 0, 64 * kSmallPage, kSmallPage);
  ASSERT_TRUE(b.is_ok()) << b.status().to_string();
  EXPECT_EQ(populated_count(**b), 0u);
  (*b)->base()[10 * kSmallPage] = 7;  // through the mapping: the page cache gets the page
  (*b)->base()[40 * kSmallPage] = 7;
  EXPECT_EQ(populated_count(**b), 2u);
  EXPECT_TRUE((*b)->populated(10));
  EXPECT_TRUE((*b)->populated(40));
  EXPECT_FALSE((*b)->populated(11));
}

class ZeroRange : public ::testing::Test {
 protected:
  void SetUp() override {
    src_ = small_block(kPages);
    dst_ = small_block(kPages);
    layout_.blocks.push_back({"ram", src_->size(), kSmallPage});
    static int n = 0;
    wired_ = wire_loopback("zero-range-" + std::to_string(++n), 3);
    recv_state_ = std::make_unique<RecvState>(std::vector<RamBlock*>{dst_.get()}, layout_);
    receiver_ = std::make_unique<ReceiverPoller>(*recv_state_, wired_.dst[2].get());
    send_state_ = std::make_unique<SendState>(std::vector<RamBlock*>{src_.get()}, 1);
    sender_ = std::make_unique<SenderPoller>(*send_state_, counters_, layout_, wired_.src[1].get(),
                                             std::vector<SenderPoller::BulkChannel>{
                                                 {wired_.src[2].get(), 0}},
                                             1.0);
  }
  void write(uint64_t page, uint8_t v) { std::memset(src_->base() + page * kSmallPage, v, kSmallPage); }
  // Runs round r to its end, sender and receiver stepped by hand.
  void round(uint32_t r) {
    send_state_->cursor = 0;
    send_state_->round = r;
    for (int i = 0; i < 20000 && receiver_->last_round_end() != r && !receiver_->failed(); ++i) {
      sender_->poll();
      receiver_->poll();
    }
    EXPECT_FALSE(receiver_->failed()) << receiver_->error().to_string();
    EXPECT_EQ(receiver_->last_round_end(), r);
  }
  std::unique_ptr<RamBlock> src_, dst_;
  Layout layout_;
  Wired wired_;
  std::unique_ptr<RecvState> recv_state_;
  std::unique_ptr<ReceiverPoller> receiver_;
  std::unique_ptr<SendState> send_state_;
  SendCounters counters_;
  std::unique_ptr<SenderPoller> sender_;
};

// Pages 100..199 and 3000 hold data; the rest was never touched: three runs, three frames,
// none of it read on the source or written on the destination.
TEST_F(ZeroRange, UntouchedRunsGoAsOneFrameEachAndAreNeverRead) {
  for (uint64_t p = 100; p < 200; ++p) write(p, static_cast<uint8_t>(p));
  write(3000, 0xab);
  ASSERT_EQ(populated_count(*src_), 101u);
  send_state_->dirty.set_all();
  round(1);
  EXPECT_EQ(counters_.zero_range_frames.load(), 3u) << "[0,100), [200,3000), [3001,4096)";
  EXPECT_EQ(counters_.normal_pages.load(), 101u);
  EXPECT_EQ(counters_.zero_pages.load(), kPages - 101);
  EXPECT_EQ(recv_state_->counters.zero_pages.load(), kPages - 101);
  EXPECT_EQ(populated_count(*src_), 101u) << "the source read never-populated memory";
  EXPECT_EQ(populated_count(*dst_), 101u) << "the destination wrote zeros it did not need";
  EXPECT_EQ(recv_state_->received.block(0).count(), kPages);
  EXPECT_EQ(std::memcmp(src_->base(), dst_->base(), src_->size()), 0);
}

// A page populated after the scan (the guest writes it) is dirty again and goes in the next
// round, as data.
TEST_F(ZeroRange, PageWrittenAfterTheScanIsSentInTheNextRound) {
  write(10, 1);
  send_state_->dirty.set_all();
  round(1);
  const uint64_t ranges = counters_.zero_range_frames.load();
  write(2000, 0x5a);                 // inside a run already sent as zeros
  send_state_->dirty.mark_target(0, 2000);  // as the dirty log reports it
  round(2);
  EXPECT_EQ(counters_.zero_range_frames.load(), ranges) << "no zero range in round 2";
  EXPECT_EQ(counters_.normal_pages.load(), 2u);
  EXPECT_EQ(populated_count(*dst_), 2u);  // before the comparison reads (maps) every page
  EXPECT_EQ(dst_->base()[2000 * kSmallPage + 17], 0x5a);
  EXPECT_EQ(std::memcmp(src_->base(), dst_->base(), src_->size()), 0);
}

// Zeros over a page the destination holds data for are written; over the rest, nothing.
TEST_F(ZeroRange, ZeroRangeOverReceivedDataZeroesIt) {
  write(5, 9);
  send_state_->dirty.set_all();
  round(1);
  ASSERT_EQ(dst_->base()[5 * kSmallPage], 9);
  std::memset(src_->base() + 5 * kSmallPage, 0, kSmallPage);
  madvise(src_->base(), 64 * kSmallPage, MADV_DONTNEED);  // the guest gave it back
  for (uint64_t p = 0; p < 64; ++p) send_state_->dirty.mark_target(0, p);
  round(2);
  EXPECT_EQ(counters_.zero_range_frames.load(), 3u) << "round 1: two runs, round 2: one";
  EXPECT_EQ(populated_count(*dst_), 1u);
  EXPECT_EQ(dst_->base()[5 * kSmallPage], 0);
}

// Page runs (wire.h, kLayoutAckPageRuns): in precopy, consecutive dirty data pages go as
// frames of up to a chunk, split at zero pages, and land the same as page by page.
TEST_F(ZeroRange, PageRunsSendConsecutivePagesInFewFrames) {
  for (uint64_t p = 100; p < 200; ++p) write(p, static_cast<uint8_t>(p));
  write(150, 0);  // populated, all zero: a zero marker inside the run
  auto frames_of_round = [&](bool runs) {
    send_state_->page_runs = runs;
    const uint64_t bytes0 = counters_.bytes.load(), normal0 = counters_.normal_pages.load();
    send_state_->dirty.set_all();
    round(runs ? 2 : 1);
    const uint64_t payload = (counters_.normal_pages.load() - normal0) * kSmallPage;
    return (counters_.bytes.load() - bytes0 - payload) / sizeof(FrameHeader);
  };
  const uint64_t page_by_page = frames_of_round(false);
  EXPECT_GE(page_by_page, 100u);
  std::memset(dst_->base(), 0, src_->size());
  const uint64_t with_runs = frames_of_round(true);
  EXPECT_LE(with_runs, 3u + 2 + 100 / 16 + 2) << "zero ranges, the zero page, runs of a chunk";
  EXPECT_EQ(recv_state_->received.block(0).count(), kPages);
  EXPECT_EQ(std::memcmp(src_->base(), dst_->base(), src_->size()), 0);
}

// A page run over a block's end fails the channel before anything is written.
TEST_F(ZeroRange, PageRunPastTheBlockFailsTheChannel) {
  // Static: the failed receiver leaves the frame in the loopback ring, whose destructor (after
  // this body, with the fixture) still copies its payload.
  static std::vector<uint8_t> payload(8 * kSmallPage, 0x11);
  TxFrame bad{make_header(FrameType::kPage, 0, src_->size() - 4 * kSmallPage, 8 * kSmallPage,
                          kFlagHostPageEnd, 1, 2),
              payload.data()};
  ASSERT_EQ(wired_.src[2]->post(&bad, 1), 1u);
  ASSERT_TRUE(wired_.src[2]->flush());
  for (int i = 0; i < 100 && !receiver_->failed(); ++i) receiver_->poll();
  ASSERT_TRUE(receiver_->failed());
  EXPECT_EQ(recv_state_->received.block(0).count(), 0u);
  EXPECT_EQ(populated_count(*dst_), 0u);
}

// A hostile peer: zero ranges past the end of the block, or longer than any frame may be,
// fail the channel, and nothing outside guest RAM is written.
TEST_F(ZeroRange, HostileZeroRangeFailsTheChannel) {
  TxFrame bad{make_header(FrameType::kZero, 0, src_->size() - 4 * kSmallPage, 8 * kSmallPage,
                          kFlagHostPageEnd, 1, 2),
              nullptr};
  ASSERT_EQ(wired_.src[2]->post(&bad, 1), 1u);
  ASSERT_TRUE(wired_.src[2]->flush());
  for (int i = 0; i < 100 && !receiver_->failed(); ++i) receiver_->poll();
  ASSERT_TRUE(receiver_->failed());
  EXPECT_NE(receiver_->error().message().find("outside block"), std::string::npos)
      << receiver_->error().to_string();
  EXPECT_EQ(recv_state_->received.block(0).count(), 0u);
}

TEST_F(ZeroRange, OverlongZeroRangeFailsTheChannel) {
  TxFrame bad{make_header(FrameType::kZero, 0, 0, kMaxZeroRange + kSmallPage, kFlagHostPageEnd, 1,
                          2),
              nullptr};
  ASSERT_EQ(wired_.src[2]->post(&bad, 1), 1u);
  ASSERT_TRUE(wired_.src[2]->flush());
  for (int i = 0; i < 100 && !receiver_->failed(); ++i) receiver_->poll();
  ASSERT_TRUE(receiver_->failed());
  EXPECT_EQ(recv_state_->received.block(0).count(), 0u);
}

// Postcopy: a zero range is placed at once with UFFDIO_ZEROPAGE; the guest does not fault.
TEST_F(ZeroRange, PostcopyPlacesAZeroRangeWithoutFaults) {
  auto u = Userfault::open();
  if (!u.is_ok()) GTEST_SKIP() << u.status().to_string();
  auto uffd = std::move(*u);
  ASSERT_TRUE(uffd->register_range(dst_->base(), dst_->size(), kSmallPage).is_ok());
  recv_state_->uffd = uffd.get();
  receiver_->enter_postcopy();
  TxFrame z{make_header(FrameType::kZero, 0, 64 * kSmallPage, 1000 * kSmallPage,
                        kFlagHostPageEnd, 1, 2),
            nullptr};
  ASSERT_EQ(wired_.src[2]->post(&z, 1), 1u);
  ASSERT_TRUE(wired_.src[2]->flush());
  for (int i = 0; i < 100 && recv_state_->received.block(0).count() < 1000; ++i) receiver_->poll();
  EXPECT_FALSE(receiver_->failed()) << receiver_->error().to_string();
  EXPECT_EQ(recv_state_->received.block(0).count(), 1000u);
  EXPECT_FALSE(recv_state_->received.block(0).test(63));
  EXPECT_FALSE(recv_state_->received.block(0).test(1064));
  // Mapped (the zero page), so reading it does not block on userfaultfd.
  EXPECT_TRUE(dst_->populated(64));
  EXPECT_TRUE(dst_->populated(1063));
  EXPECT_FALSE(dst_->populated(1064));
  EXPECT_EQ(dst_->base()[500 * kSmallPage + 9], 0);
  (void)uffd->unregister_range(dst_->base(), dst_->size());
}

}  // namespace
}  // namespace tern::engine
