// Sealed markers and page tags (engine/marker_seal.h, engine/page_integrity.h): a marker opens
// once, in order, under the peer's key of that direction only; any changed byte of it (or of
// the page bytes a tag covers) is refused; a tag names exactly its frame; the sequence advances
// on a refusal only when asked (precopy page tags).
#include <gtest/gtest.h>

#include <cstring>
#include <vector>

#include "dataplane/engine/page_integrity.h"

namespace tern::engine {
namespace {

using Refusal = MarkerOpener::Refusal;

struct Sealed {
  FrameHeader outer;
  uint8_t payload[kSealedMarkerBytes];
};

class MarkerSealTest : public ::testing::Test {
 protected:
  uint8_t key_[kSessionKeyBytes], other_[kSessionKeyBytes];
  void SetUp() override {
    std::memset(key_, 0x6b, sizeof(key_));
    std::memset(other_, 0x73, sizeof(other_));
  }
  static Sealed seal(MarkerSealer& s, const FrameHeader& inner, const uint8_t* covered = nullptr,
                     size_t n = 0) {
    Sealed m;
    EXPECT_TRUE(s.seal(inner, covered, n, &m.outer, m.payload));
    return m;
  }
  const FrameHeader round_end_ = make_header(FrameType::kRoundEnd, 0, 0, 0, 0, 3, 2);
  const FrameHeader request_ = make_header(FrameType::kRequest, 1, 8192, 0, 0, 0, 1);
};

TEST_F(MarkerSealTest, OpensOnceInOrderUnderThePeersKey) {
  MarkerSealer sealer(key_);
  Sealed a = seal(sealer, round_end_), b = seal(sealer, request_);
  EXPECT_TRUE(is_sealed_frame(a.outer));
  EXPECT_EQ(a.outer.length, kSealedMarkerBytes);
  EXPECT_EQ(a.outer.block, 0u);
  MarkerOpener opener(key_);
  FrameHeader inner;
  ASSERT_EQ(opener.open(a.outer, a.payload, nullptr, 0, &inner), Refusal::kNone);
  EXPECT_EQ(std::memcmp(&inner, &round_end_, sizeof(inner)), 0);
  // Replayed: the same marker again stands where the next one is due.
  EXPECT_EQ(opener.open(a.outer, a.payload, nullptr, 0, &inner), Refusal::kDoesNotOpen);
  EXPECT_EQ(opener.opened(), 1u);
  ASSERT_EQ(opener.open(b.outer, b.payload, nullptr, 0, &inner), Refusal::kNone);
  EXPECT_EQ(std::memcmp(&inner, &request_, sizeof(inner)), 0);
  // Reordered, or under another key (the other direction, another channel or session).
  MarkerSealer again(key_);
  Sealed c = seal(again, round_end_), d = seal(again, round_end_);
  MarkerOpener fresh(key_), wrong(other_);
  EXPECT_EQ(fresh.open(d.outer, d.payload, nullptr, 0, &inner), Refusal::kDoesNotOpen);
  EXPECT_EQ(wrong.open(c.outer, c.payload, nullptr, 0, &inner), Refusal::kDoesNotOpen);
}

TEST_F(MarkerSealTest, EveryChangedByteIsRefused) {
  MarkerSealer sealer(key_);
  Sealed m = seal(sealer, round_end_);
  for (size_t i = 0; i < sizeof(FrameHeader) + kSealedMarkerBytes; ++i) {
    Sealed x = m;
    uint8_t* bytes = i < sizeof(FrameHeader) ? reinterpret_cast<uint8_t*>(&x.outer) + i
                                             : x.payload + (i - sizeof(FrameHeader));
    *bytes ^= 0x01;
    MarkerOpener opener(key_);
    FrameHeader inner;
    EXPECT_NE(opener.open(x.outer, x.payload, nullptr, 0, &inner), Refusal::kNone) << "byte " << i;
    EXPECT_EQ(opener.opened(), 0u);
  }
  MarkerOpener opener(key_);
  FrameHeader inner;
  EXPECT_EQ(opener.open(round_end_, nullptr, nullptr, 0, &inner), Refusal::kNotSealed);
  EXPECT_NE(MarkerOpener::describe("round end", Refusal::kNotSealed, 0, 2)
                .find("round end failed authentication on channel 2: an unsealed frame"),
            std::string::npos);
}

TEST_F(MarkerSealTest, APageTagCoversItsFrameAndItsBytes) {
  std::vector<uint8_t> page(4096, 0x5a);
  const FrameHeader ph = make_header(FrameType::kPage, 1, 4096, 4096, kFlagHostPageEnd, 1, 2);
  const FrameHeader zh = make_header(FrameType::kZero, 1, 8192, 4096, kFlagHostPageEnd, 1, 2);
  MarkerSealer sealer(key_);
  Sealed tag = seal(sealer, ph, page.data(), page.size());
  Sealed ztag = seal(sealer, zh);
  EXPECT_EQ(tag.outer.block, kMarkerTagsNext);
  MarkerOpener opener(key_);
  PageTagCheck check(opener);
  using V = PageTagCheck::Verdict;
  EXPECT_EQ(check.check(ph, page.data(), true), V::kNoTag);
  ASSERT_TRUE(check.keep(tag.outer, tag.payload));
  EXPECT_FALSE(check.keep(ztag.outer, ztag.payload));  // two tags in a row
  EXPECT_EQ(check.check(ph, page.data(), true), V::kVerified);
  ASSERT_TRUE(check.keep(ztag.outer, ztag.payload));
  EXPECT_EQ(check.check(zh, nullptr, true), V::kVerified);

  // A changed byte of the page fails; strict leaves the sequence, lenient moves past it.
  Sealed t2 = seal(sealer, ph, page.data(), page.size());
  Sealed t3 = seal(sealer, ph, page.data(), page.size());
  page[100] ^= 0xff;
  ASSERT_TRUE(check.keep(t2.outer, t2.payload));
  EXPECT_EQ(check.check(ph, page.data(), true), V::kFailed);
  EXPECT_EQ(opener.opened(), 2u);
  ASSERT_TRUE(check.keep(t2.outer, t2.payload));
  EXPECT_EQ(check.check(ph, page.data(), false), V::kFailed);
  EXPECT_EQ(opener.opened(), 3u);
  page[100] ^= 0xff;
  ASSERT_TRUE(check.keep(t3.outer, t3.payload));
  EXPECT_EQ(check.check(ph, page.data(), false), V::kVerified);
  // A tag for another frame (the zero marker's frame swapped in) does not pass.
  Sealed t4 = seal(sealer, ph, page.data(), page.size());
  ASSERT_TRUE(check.keep(t4.outer, t4.payload));
  EXPECT_EQ(check.check(zh, nullptr, true), V::kFailed);
}

}  // namespace
}  // namespace tern::engine
