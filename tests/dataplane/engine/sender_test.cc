// S1 and S3, deterministic: a sender stepped by hand over real loopback channels, with page
// requests arriving at chosen moments in the middle of a huge page.
#include <gtest/gtest.h>

#include "tests/dataplane/engine_fixture.h"

namespace tern::engine {
namespace {

using namespace testing_support;

class SenderTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto r = reserve_huge_pages(8);
    if (!r.is_ok()) GTEST_SKIP() << "needs 2 MiB hugetlb pages: " << r.status().to_string();
    auto b = RamBlock::create("ram", 4 * kHugePage, kHugePage);
    ASSERT_TRUE(b.is_ok()) << b.status().to_string();
    block_ = std::move(*b);
    for (uint64_t i = 0; i < block_->size(); i += kTargetPageSize)
      std::memset(block_->base() + i, static_cast<int>(1 + i / kHugePage), kTargetPageSize);
    layout_.blocks.push_back({"ram", block_->size(), kHugePage});
    dest_.resize(block_->size());
    landing_ = Landing({{dest_.data(), dest_.size(), kHugePage}});
    static int n = 0;
    wired_ = wire_loopback("sched-" + std::to_string(++n), 3);
    for (auto& c : wired_.dst) c->set_landing(&landing_);
    for (auto& c : wired_.src) c->set_landing(&landing_);
    state_ = std::make_unique<SendState>(std::vector<RamBlock*>{block_.get()}, 1);
    state_->dirty.set_all();
    state_->postcopy = true;
    state_->round = 1;
  }
  std::unique_ptr<SenderPoller> sender(bool preempt) {
    state_->preempt = preempt;
    return std::make_unique<SenderPoller>(*state_, counters_, layout_, wired_.src[1].get(),
                                          std::vector<SenderPoller::BulkChannel>{
                                              {wired_.src[2].get(), 0}},
                                          1.0);
  }
  // As the engine runs postcopy-preempt: the urgent channel's own sender (its own thread
  // there) and a sender for the bulk lane alone.
  std::pair<std::unique_ptr<SenderPoller>, std::unique_ptr<SenderPoller>> split_senders() {
    state_->preempt = true;
    auto urgent = std::make_unique<SenderPoller>(*state_, counters_, layout_, wired_.src[1].get(),
                                                 std::vector<SenderPoller::BulkChannel>{}, 0);
    auto bulk = std::make_unique<SenderPoller>(
        *state_, counters_, layout_, nullptr,
        std::vector<SenderPoller::BulkChannel>{{wired_.src[2].get(), 0}}, 1.0);
    return {std::move(urgent), std::move(bulk)};
  }
  static uint64_t hp_of(const Seen& s) { return s.hdr.offset / kHugePage; }

  std::unique_ptr<RamBlock> block_;
  Layout layout_;
  std::vector<uint8_t> dest_;
  Landing landing_;
  Wired wired_;
  std::unique_ptr<SendState> state_;
  SendCounters counters_;
};

// S1: a request in the middle of a huge page is served on the urgent channel at once; the
// interrupted page then resumes exactly where it stopped, on the same channel.
TEST_F(SenderTest, RequestInTheMiddleOfAHugePagePreemptsBetweenChunks) {
  auto s = sender(/*preempt=*/true);
  s->poll();  // first chunk of host page 0 on the bulk channel
  auto bulk = drain(*wired_.dst[2]);
  ASSERT_EQ(bulk.size(), 1u);
  EXPECT_EQ(bulk[0].hdr.offset, 0u);
  EXPECT_EQ(bulk[0].hdr.length, 64u * 1024);

  send_request(*wired_.dst[1], 0, 2 * kHugePage + 8192);  // a target page inside host page 2
  bool urgent_done = false;
  uint64_t resumed_at = 0;
  for (int i = 0; i < 1000 && resumed_at == 0; ++i) {
    s->poll();
    for (const Seen& f : drain(*wired_.dst[1])) {
      EXPECT_EQ(hp_of(f), 2u);
      EXPECT_TRUE(f.hdr.flags & kFlagUrgent);
      EXPECT_EQ(f.first_byte, 3);
      if (f.hdr.flags & kFlagHostPageEnd) urgent_done = true;
    }
    for (const Seen& f : drain(*wired_.dst[2])) {
      ASSERT_TRUE(urgent_done) << "bulk went on before the urgent page was out";
      ASSERT_EQ(hp_of(f), 0u);
      if (resumed_at == 0) resumed_at = f.hdr.offset;
    }
  }
  EXPECT_TRUE(urgent_done);
  EXPECT_EQ(resumed_at, 64u * 1024) << "the preempted page must resume where it stopped";
  EXPECT_EQ(counters_.preemptions.load(), 1u);
  EXPECT_EQ(counters_.urgent_pages.load(), 1u);
}

// S1 as the engine runs it with preempt: the urgent sender answers a request while the bulk
// sender is in the middle of a huge page, without waiting for it, and counts the preemption;
// the bulk page then goes on from where it was, on its own channel.
TEST_F(SenderTest, UrgentSenderOfItsOwnAnswersWhileABulkHugePageIsHalfSent) {
  auto [urgent, bulk] = split_senders();
  bulk->poll();  // the first chunks of host page 0 (a bulk-only sender takes several a poll)
  const size_t sent = drain(*wired_.dst[2]).size();
  ASSERT_GE(sent, 1u);
  ASSERT_LT(sent, kHugePage / (64 * 1024));
  send_request(*wired_.dst[1], 0, 2 * kHugePage + 8192);
  std::vector<Seen> answer;
  for (int i = 0; i < 200 && (answer.empty() || !(answer.back().hdr.flags & kFlagHostPageEnd)); ++i) {
    urgent->poll();  // the bulk sender does not run meanwhile: nothing waits for it
    for (const Seen& f : drain(*wired_.dst[1])) answer.push_back(f);
  }
  ASSERT_FALSE(answer.empty()) << "the request was not answered";
  uint64_t bytes = 0;
  for (const Seen& f : answer) {
    EXPECT_EQ(hp_of(f), 2u);
    EXPECT_TRUE(f.hdr.flags & kFlagUrgent);
    EXPECT_EQ(f.first_byte, 3);
    bytes += f.hdr.length;
  }
  EXPECT_EQ(bytes, kHugePage) << "the urgent page goes whole on the urgent channel (S2)";
  EXPECT_EQ(counters_.preemptions.load(), 1u);
  bulk->poll();
  auto rest = drain(*wired_.dst[2]);
  ASSERT_FALSE(rest.empty());
  EXPECT_EQ(hp_of(rest[0]), 0u);
  EXPECT_EQ(rest[0].hdr.offset, sent * 64 * 1024) << "the bulk page resumes where it stopped";
}

// S3 with the split senders: a request for the page half sent on a bulk lane raises that lane
// (it finishes the page flagged urgent); nothing of it goes on the urgent channel.
TEST_F(SenderTest, UrgentSenderOfItsOwnRaisesThePartlySentPageOnItsBulkLane) {
  auto [urgent, bulk] = split_senders();
  bulk->poll();
  drain(*wired_.dst[2]);
  send_request(*wired_.dst[1], 0, 0);
  urgent->poll();
  EXPECT_TRUE(drain(*wired_.dst[1]).empty()) << "a huge page was split across channels";
  EXPECT_EQ(counters_.raised.load(), 1u);
  bool end = false;
  for (int i = 0; i < 200 && !end; ++i) {
    bulk->poll();
    for (const Seen& f : drain(*wired_.dst[2])) {
      if (hp_of(f) != 0) continue;
      EXPECT_TRUE(f.hdr.flags & kFlagUrgent) << "raised page lost its urgency at " << f.hdr.offset;
      end |= (f.hdr.flags & kFlagHostPageEnd) != 0;
    }
  }
  EXPECT_TRUE(end);
}

// Without preemption the request waits for the host page boundary, then goes first.
TEST_F(SenderTest, WithoutPreemptionRequestWaitsForHostPageBoundary) {
  auto s = sender(/*preempt=*/false);
  s->poll();
  drain(*wired_.dst[2]);
  send_request(*wired_.dst[1], 0, 3 * kHugePage);
  bool page0_done = false, urgent_seen = false;
  for (int i = 0; i < 1000 && !urgent_seen; ++i) {
    s->poll();
    for (const Seen& f : drain(*wired_.dst[2])) {
      ASSERT_FALSE(urgent_seen);
      if (hp_of(f) == 0 && (f.hdr.flags & kFlagHostPageEnd)) page0_done = true;
    }
    for (const Seen& f : drain(*wired_.dst[1])) {
      ASSERT_TRUE(page0_done) << "the urgent page cut into a huge page without preemption";
      EXPECT_EQ(hp_of(f), 3u);
      urgent_seen = true;
    }
  }
  EXPECT_TRUE(urgent_seen);
  EXPECT_EQ(counters_.preemptions.load(), 0u);
}

// S3: a request for exactly the page that is partly sent on the bulk channel is served at once
// on that bulk channel with its urgency raised: never dropped, never sent on the urgent
// channel, never postponed behind a request queued after it.
TEST_F(SenderTest, RequestForThePartlySentPageIsRaisedOnItsBulkChannel) {
  auto s = sender(/*preempt=*/true);
  s->poll();  // chunk 0 of host page 0
  drain(*wired_.dst[2]);
  send_request(*wired_.dst[1], 0, 0);                 // exactly the partly sent page
  send_request(*wired_.dst[1], 0, 1 * kHugePage);     // then another page
  uint64_t page0_end_poll = 0, page1_first_poll = 0;
  bool page0_on_urgent = false;
  for (uint64_t i = 1; i < 2000 && page1_first_poll == 0; ++i) {
    s->poll();
    for (const Seen& f : drain(*wired_.dst[2])) {
      if (hp_of(f) != 0) continue;
      EXPECT_TRUE(f.hdr.flags & kFlagUrgent) << "raised page lost its urgency at " << f.hdr.offset;
      if (f.hdr.flags & kFlagHostPageEnd) page0_end_poll = i;
    }
    for (const Seen& f : drain(*wired_.dst[1])) {
      if (hp_of(f) == 0) page0_on_urgent = true;
      if (hp_of(f) == 1 && page1_first_poll == 0) page1_first_poll = i;
    }
  }
  EXPECT_FALSE(page0_on_urgent) << "a huge page was split across channels";
  ASSERT_NE(page0_end_poll, 0u) << "the raised request was dropped";
  ASSERT_NE(page1_first_poll, 0u);
  EXPECT_LE(page0_end_poll, page1_first_poll) << "the raised page waited behind a later request";
  EXPECT_EQ(counters_.raised.load(), 1u);
  EXPECT_EQ(counters_.requests.load(), 2u);
}

// A request for a page that was already sent whole is answered again, whole, on the urgent
// channel: the first copy may still be queued behind a channel's worth of bulk frames.
TEST_F(SenderTest, RequestForAPageAlreadySentIsAnsweredAgainOnTheUrgentChannel) {
  auto s = sender(/*preempt=*/true);
  bool page0_done = false;
  for (int i = 0; i < 200 && !page0_done; ++i) {
    s->poll();
    for (const Seen& f : drain(*wired_.dst[2]))
      if (hp_of(f) == 0 && (f.hdr.flags & kFlagHostPageEnd)) page0_done = true;
  }
  ASSERT_TRUE(page0_done);
  send_request(*wired_.dst[1], 0, 0);
  std::vector<Seen> urgent;
  for (int i = 0; i < 200 && (urgent.empty() || !(urgent.back().hdr.flags & kFlagHostPageEnd));
       ++i) {
    s->poll();
    for (const Seen& f : drain(*wired_.dst[1])) urgent.push_back(f);
  }
  ASSERT_FALSE(urgent.empty()) << "the request was not answered";
  uint64_t bytes = 0;
  for (const Seen& f : urgent) {
    EXPECT_EQ(hp_of(f), 0u) << "only the requested page comes on the urgent channel";
    EXPECT_TRUE(f.hdr.flags & kFlagUrgent);
    bytes += f.hdr.length;
  }
  EXPECT_EQ(bytes, kHugePage) << "the page is sent again whole (S2)";
  EXPECT_TRUE(urgent.back().hdr.flags & kFlagHostPageEnd);
  EXPECT_EQ(counters_.stale_requests.load(), 1u);
}

}  // namespace
}  // namespace tern::engine
