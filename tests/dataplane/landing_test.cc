// The landing's rules (dataplane/landing.h): address resolution and its refusals, how payloads
// and zero runs are written, host-page batching, and what a transport may grant for remote
// writes.
#include "dataplane/landing.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <span>
#include <string>

namespace tern {
namespace {

constexpr uint32_t k2M = 2u << 20;

// Block 0: 8 MiB of 2 MiB host pages; block 1: 64 KiB of 4 KiB host pages.
Layout two_blocks() {
  Layout l;
  l.blocks.push_back({"ram0", 8u << 20, k2M});
  l.blocks.push_back({"ram1", 64u << 10, 4096});
  return l;
}

class LandingTest : public ::testing::Test {
 protected:
  FrameHeader page(uint32_t block, uint64_t offset, uint32_t length, uint32_t flags = 0) {
    return make_header(FrameType::kPage, block, offset, length, flags);
  }
  // The refusal of h: resolve gives nullptr and a reason, refusal() a message.
  std::string refused(const FrameHeader& h, LandingRefusal expect) {
    LandingRefusal why = LandingRefusal::kNone;
    EXPECT_EQ(landing_.resolve(h, &why), nullptr);
    EXPECT_EQ(why, expect);
    const Status s = landing_.refusal(h, why);
    EXPECT_EQ(s.code(), Code::kProtocol);
    return s.message();
  }

  // Both blocks in one buffer with room around them, so that registrations may overhang.
  std::vector<uint8_t> mem_ = std::vector<uint8_t>(9u << 20), staging_ = std::vector<uint8_t>(k2M);
  std::span<uint8_t> ram0_{mem_.data() + 4096, 8u << 20};
  std::span<uint8_t> ram1_{mem_.data() + (8u << 20) + 16384, 64u << 10};
  Landing landing_{{{ram0_.data(), ram0_.size(), k2M}, {ram1_.data(), ram1_.size(), 4096}}};
};

// kPageCache: the first frame of a host page takes it for its landing's channel and lands in
// the page cache mapping; another channel's frames for it, and frames after its install, land
// in the staging page (a sink): no late copy reaches the page the guest may be writing.
TEST_F(LandingTest, PageCacheHostPageIsWrittenByTheChannelThatTookItOnly) {
  std::vector<uint8_t> cache(8u << 20), other_staging(k2M);
  AtomicBitmap taken(4);
  taken.set(3);  // in place before postcopy
  auto make = [&](uint8_t* staging) {
    Landing l({{ram0_.data(), ram0_.size(), k2M, cache.data(), &taken}});
    l.set_staging(staging);
    return l;
  };
  Landing a = make(staging_.data()), b = make(other_staging.data());
  EXPECT_EQ(a.mode(0), Landing::Mode::kPageCache);
  EXPECT_EQ(a.resolve(page(0, k2M + 8192, 4096)), cache.data() + k2M + 8192);
  EXPECT_TRUE(a.owns(0, 1));
  EXPECT_EQ(a.resolve(page(0, k2M, 4096)), cache.data() + k2M);  // still a's
  EXPECT_EQ(b.resolve(page(0, k2M + 4096, 4096)), other_staging.data() + 4096);  // a duplicate
  EXPECT_FALSE(b.owns(0, 1));
  EXPECT_EQ(b.resolve(page(0, 3 * k2M, 4096)), other_staging.data());  // placed already
  // A zero run takes its host page too, and writes nothing.
  std::fill(cache.begin(), cache.end(), 0xcc);
  EXPECT_EQ(b.land_zero(make_header(FrameType::kZero, 0, 0, 4096), true), LandingRefusal::kNone);
  EXPECT_TRUE(b.owns(0, 0));
  EXPECT_EQ(cache[0], 0xcc);
  a.release();
  EXPECT_EQ(a.resolve(page(0, k2M, 4096)), staging_.data());  // installed: now a duplicate
  EXPECT_EQ(taken.count(), 3u);
}

TEST_F(LandingTest, ResolvesToGuestRamOrToTheStagingPage) {
  EXPECT_EQ(landing_.mode(0), Landing::Mode::kDirect);
  EXPECT_EQ(landing_.resolve(page(0, k2M + 8192, 4096)), ram0_.data() + k2M + 8192);
  EXPECT_EQ(landing_.resolve(page(1, 60u << 10, 4096)), ram1_.data() + (60u << 10));
  landing_.set_staging(staging_.data());
  EXPECT_EQ(landing_.mode(0), Landing::Mode::kStaged);
  // At the frame's offset within its host page.
  EXPECT_EQ(landing_.resolve(page(0, k2M + 8192, 4096)), staging_.data() + 8192);
  EXPECT_EQ(landing_.resolve(page(1, 60u << 10, 4096)), staging_.data());
  landing_.set_staging(nullptr);
  EXPECT_EQ(landing_.resolve(page(0, 0, k2M)), ram0_.data());
}

TEST_F(LandingTest, RefusalsNameTheFrameAndTheRule) {
  std::string m = refused(page(7, 0, 4096), LandingRefusal::kNoBlock);
  EXPECT_NE(m.find("page frame for block 7 offset 0 length 4096 lies outside the landing"),
            std::string::npos)
      << m;
  EXPECT_NE(m.find("the layout has 2 block(s)"), std::string::npos) << m;

  m = refused(page(0, 100, 4096), LandingRefusal::kUnaligned);
  EXPECT_NE(m.find("offset 100"), std::string::npos) << m;
  EXPECT_NE(m.find("whole target pages of 4096 bytes"), std::string::npos) << m;
  refused(page(0, 0, 100), LandingRefusal::kUnaligned);
  refused(page(0, 0, 0), LandingRefusal::kUnaligned);

  m = refused(page(1, 64u << 10, 4096), LandingRefusal::kOutsideBlock);
  EXPECT_NE(m.find("block 1 offset 65536"), std::string::npos) << m;
  EXPECT_NE(m.find("the block ends at 65536 bytes"), std::string::npos) << m;
  refused(page(1, (64u << 10) - 4096, 8192), LandingRefusal::kOutsideBlock);
  refused(page(0, ~uint64_t{0} - 4095, 4096), LandingRefusal::kOutsideBlock);  // no wrap

  m = refused(page(0, k2M - 4096, 8192), LandingRefusal::kCrossesHostPage);
  EXPECT_NE(m.find("crosses a host page boundary (host pages of 2097152 bytes)"), std::string::npos)
      << m;
  // Staged landing refuses the same frames (it must never write past its one host page), and
  // page runs of 4 KiB host pages, which direct landing takes (wire.h, kLayoutAckPageRuns).
  EXPECT_EQ(landing_.resolve(page(1, 4096, 8192)), ram1_.data() + 4096);
  landing_.set_staging(staging_.data());
  refused(page(0, k2M - 4096, 8192), LandingRefusal::kCrossesHostPage);
  refused(page(1, 0, 8192), LandingRefusal::kCrossesHostPage);
  refused(page(2, 0, 4096), LandingRefusal::kNoBlock);
  // A zero run is named as one.
  m = landing_.refusal(make_header(FrameType::kZero, 9, 0, 4096), LandingRefusal::kNoBlock)
          .message();
  EXPECT_EQ(m.rfind("zero run for block 9", 0), 0u) << m;
}

TEST_F(LandingTest, RefusesWhatTheLayoutRefuses) {
  const Layout l = two_blocks();
  std::mt19937_64 rng(7);
  for (int i = 0; i < 200000; ++i) {
    FrameHeader h = page(rng() % 3, rng() % (10u << 20),
                         static_cast<uint32_t>((rng() % 3) * 4096 + (rng() % 2) * 100));
    if (i % 3 == 0) h.offset &= ~uint64_t{4095};
    const bool ok = check_page_frame(h, l).is_ok() && h.length > 0 && h.length % 4096 == 0;
    LandingRefusal why = LandingRefusal::kNone;
    uint8_t* p = landing_.resolve(h, &why);
    ASSERT_EQ(p != nullptr, ok) << h.block << " " << h.offset << " " << h.length;
    ASSERT_EQ(why == LandingRefusal::kNone, ok);
    if (p != nullptr) {
      const BlockLanding& b = landing_.blocks()[h.block];
      EXPECT_GE(p, b.base);
      EXPECT_LE(p + h.length, b.base + b.size);
    }
  }
}

TEST_F(LandingTest, CopiesPayloadsWhereTheyResolve) {
  std::vector<uint8_t> src(64u << 10);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 13 + 1);
  const FrameHeader h = page(0, k2M + (64u << 10), 64u << 10);
  // Direct: streamed into guest RAM, whole or in fragments.
  landing_.copy(landing_.resolve(h), src.data(), src.size());
  EXPECT_TRUE(std::equal(src.begin(), src.end(), ram0_.begin() + h.offset));
  std::fill(ram0_.begin(), ram0_.end(), 0);
  uint8_t* dst = landing_.resolve(h);
  for (size_t off = 0; off < src.size(); off += 8192)
    landing_.copy_fragment(dst + off, src.data() + off, 8192);
  Landing::end_fragments();
  EXPECT_TRUE(std::equal(src.begin(), src.end(), ram0_.begin() + h.offset));
  // Staged: into the staging page, guest RAM untouched; an odd size copies too.
  std::fill(ram0_.begin(), ram0_.end(), 0);
  landing_.set_staging(staging_.data());
  landing_.copy(landing_.resolve(h), src.data(), 100);
  landing_.copy_fragment(landing_.resolve(h) + 100, src.data() + 100, src.size() - 100);
  Landing::end_fragments();
  EXPECT_TRUE(std::equal(src.begin(), src.end(), staging_.begin() + (64u << 10)));
  EXPECT_TRUE(std::all_of(ram0_.begin(), ram0_.end(), [](uint8_t v) { return v == 0; }));
}

TEST_F(LandingTest, ZeroRunsWriteOnlyOverEarlierData) {
  const FrameHeader z = make_header(FrameType::kZero, 0, k2M + 4096, 8192);
  std::fill(ram0_.begin(), ram0_.end(), 0xAB);
  // Fresh memory (nothing landed there yet) is zero already: nothing is written.
  EXPECT_EQ(landing_.land_zero(z, false), LandingRefusal::kNone);
  EXPECT_EQ(ram0_[k2M + 4096], 0xAB);
  EXPECT_EQ(landing_.land_zero(z, true), LandingRefusal::kNone);
  EXPECT_TRUE(std::all_of(ram0_.begin() + z.offset, ram0_.begin() + z.offset + z.length,
                          [](uint8_t v) { return v == 0; }));
  EXPECT_EQ(ram0_[k2M], 0xAB);
  EXPECT_EQ(ram0_[z.offset + z.length], 0xAB);
  // Staged: in the staging page at the run's place in its host page.
  std::fill(staging_.begin(), staging_.end(), 0xCD);
  landing_.set_staging(staging_.data());
  EXPECT_EQ(landing_.land_zero(z, true), LandingRefusal::kNone);
  EXPECT_EQ(staging_[4095], 0xCD);
  EXPECT_EQ(staging_[4096], 0);
  EXPECT_EQ(staging_[4096 + 8191], 0);
  EXPECT_EQ(staging_[4096 + 8192], 0xCD);
  // A run the landing refuses writes nothing, whether or not memory held data.
  const FrameHeader bad = make_header(FrameType::kZero, 0, k2M - 4096, 8192);
  EXPECT_EQ(landing_.land_zero(bad, true), LandingRefusal::kCrossesHostPage);
  EXPECT_EQ(landing_.land_zero(bad, false), LandingRefusal::kCrossesHostPage);
  EXPECT_EQ(staging_[k2M - 1], 0xCD);
}

// A zero range (never-populated memory on the source) covers whole host pages: only the pages
// that held data here are cleared; ranges off the host-page grid or past the block are refused.
TEST_F(LandingTest, ZeroRangesClearOnlyHostPagesThatHeldData) {
  std::fill(ram0_.begin(), ram0_.end(), 0xAB);
  const FrameHeader z = make_header(FrameType::kZero, 0, k2M, 2 * k2M);  // host pages 1 and 2
  std::vector<uint64_t> asked;
  EXPECT_EQ(landing_.land_zero_range(z, [&](uint64_t p) {
    asked.push_back(p);
    return p == 2;
  }), LandingRefusal::kNone);
  EXPECT_EQ(asked, (std::vector<uint64_t>{1, 2}));
  EXPECT_EQ(ram0_[k2M], 0xAB) << "host page 1 was fresh: untouched";
  EXPECT_TRUE(std::all_of(ram0_.begin() + 2 * k2M, ram0_.begin() + 3 * k2M,
                          [](uint8_t v) { return v == 0; }));
  EXPECT_EQ(ram0_[3 * k2M], 0xAB);
  auto never = [](uint64_t) {
    ADD_FAILURE() << "a refused range asks nothing";
    return true;
  };
  EXPECT_EQ(landing_.land_zero_range(make_header(FrameType::kZero, 0, 4096, k2M), never),
            LandingRefusal::kUnaligned);
  EXPECT_EQ(landing_.land_zero_range(make_header(FrameType::kZero, 0, 2 * k2M, 3 * k2M), never),
            LandingRefusal::kOutsideBlock);
  EXPECT_EQ(landing_.land_zero_range(make_header(FrameType::kZero, 5, 0, k2M), never),
            LandingRefusal::kNoBlock);
}

TEST_F(LandingTest, StagedBatchesEndAfterTheLastFrameOfAHostPage) {
  const FrameHeader last = page(0, k2M - 4096, 4096, kFlagHostPageEnd);
  const FrameHeader mid = page(0, 0, 4096);
  const FrameHeader zero_last = make_header(FrameType::kZero, 0, 0, 4096, kFlagHostPageEnd);
  // A control frame's flags hold its ControlType: bit 2 set there means nothing.
  const FrameHeader control = make_header(FrameType::kControl, 0, 0, 0, kFlagHostPageEnd);
  const FrameHeader round_end = make_header(FrameType::kRoundEnd, 0, 0, 0, kFlagHostPageEnd);
  // Direct landing never asks poll_rx to stop.
  for (const auto& h : {last, mid, zero_last, control, round_end})
    EXPECT_FALSE(landing_.ends_batch(h));
  landing_.set_staging(staging_.data());
  EXPECT_TRUE(landing_.ends_batch(last));
  EXPECT_TRUE(landing_.ends_batch(zero_last));
  EXPECT_FALSE(landing_.ends_batch(mid));
  EXPECT_FALSE(landing_.ends_batch(control));
  EXPECT_FALSE(landing_.ends_batch(round_end));
}

TEST_F(LandingTest, RemoteWritesAreClippedToTheFramesBlock) {
  const FrameHeader h = page(0, 3u << 20, 4096);
  uint8_t* const b0 = ram0_.data();
  // A registration larger than the block on both sides: clipped to the block.
  WritableSpan s = landing_.remote_writable(h, b0 - 4096, ram0_.size() + 8192);
  EXPECT_EQ(s.base, b0);
  EXPECT_EQ(s.offset, 0u);
  EXPECT_EQ(s.length, ram0_.size());
  // Inside the block: the registration as it is, its offset in the block.
  s = landing_.remote_writable(h, b0 + k2M, 4u << 20);
  EXPECT_EQ(s.base, b0 + k2M);
  EXPECT_EQ(s.offset, k2M);
  EXPECT_EQ(s.length, 4u << 20);
  // Ends exactly at the frame's last byte.
  s = landing_.remote_writable(h, b0 + k2M, (1u << 20) + 4096);
  EXPECT_EQ(s.length, (1u << 20) + 4096);
  // A registration that does not hold all of the frame's bytes is refused.
  EXPECT_EQ(landing_.remote_writable(h, b0 + k2M, 1u << 20).length, 0u);
  EXPECT_EQ(landing_.remote_writable(h, b0 + (3u << 20) + 1, 8192).length, 0u);
  EXPECT_EQ(landing_.remote_writable(h, ram1_.data(), ram1_.size()).length, 0u);
  EXPECT_EQ(landing_.remote_writable(h, nullptr, 0).length, 0u);
  // A frame that does not resolve is refused, whatever the registration.
  EXPECT_EQ(landing_.remote_writable(page(0, 100, 4096), b0, ram0_.size()).length, 0u);
  EXPECT_EQ(landing_.remote_writable(page(5, 0, 4096), b0, ram0_.size()).length, 0u);
  // Block 1, registered together with block 0's tail: only block 1.
  s = landing_.remote_writable(page(1, 4096, 4096), ram1_.data() - 8192, ram1_.size() + 8192);
  EXPECT_EQ(s.base, ram1_.data());
  EXPECT_EQ(s.length, ram1_.size());
  // Staged landing (postcopy: the guest runs) accepts no remote writes.
  EXPECT_TRUE(landing_.accepts_remote_writes());
  landing_.set_staging(staging_.data());
  EXPECT_FALSE(landing_.accepts_remote_writes());
  EXPECT_EQ(landing_.remote_writable(h, b0, ram0_.size()).length, 0u);
}

}  // namespace
}  // namespace tern
