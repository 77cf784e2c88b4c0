#include "dataplane/wire.h"

#include <gtest/gtest.h>

#include <cstring>
#include <random>


namespace tern {
namespace {

Layout two_blocks() {
  Layout l;
  l.blocks.push_back({"ram0", 8u << 20, 2u << 20});
  l.blocks.push_back({"ram1", 64u << 10, 4096});
  return l;
}

TEST(Wire, HeaderChecks) {
  EXPECT_TRUE(check_header(make_header(FrameType::kPage, 0, 0, 4096)).is_ok());
  FrameHeader h = make_header(FrameType::kPage, 0, 0, 4096);
  h.magic = 0x1234;
  EXPECT_EQ(check_header(h).code(), Code::kProtocol);
  h = make_header(FrameType::kPage, 0, 0, 4096);
  h.version = 9;
  EXPECT_NE(check_header(h).message().find("version 9"), std::string::npos);
  EXPECT_NE(check_header(h).message().find("newer tern"), std::string::npos);
  // A peer of version 4 (before sealed markers and x509 in frames) is told to upgrade.
  h.version = 4;
  EXPECT_NE(check_header(h).message().find("peer speaks wire version 4, this build speaks 5 "
                                           "(the peer runs an older tern: upgrade it)"),
            std::string::npos)
      << check_header(h).message();
  EXPECT_FALSE(check_header(make_header(FrameType::kPage, 0, 0, 100)).is_ok());
  EXPECT_FALSE(check_header(make_header(FrameType::kPage, 0, 0, 0)).is_ok());
  EXPECT_FALSE(check_header(make_header(FrameType::kPage, 0, 0, 4u << 20)).is_ok());
  h = make_header(FrameType::kPage);
  h.type = 77;
  EXPECT_FALSE(check_header(h).is_ok());
  EXPECT_FALSE(check_header(make_header(FrameType::kControl, 0, 0, kMaxControlPayload + 1)).is_ok());
}

TEST(Wire, PageFramesMustLieInsideOneHostPage) {
  Layout l = two_blocks();
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kPage, 0, 0, 64u << 10), l).is_ok());
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kPage, 1, 60u << 10, 4096), l).is_ok());
  // Out of range block, offset past the end, unaligned, crossing a host page.
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 2, 0, 4096), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 1, 64u << 10, 4096), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 0, 100, 4096), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 0, (2u << 20) - 4096, 8192), l).is_ok());
  EXPECT_FALSE(
      check_page_frame(make_header(FrameType::kPage, 0, ~uint64_t{0} - 4095, 4096), l).is_ok());
}

// A page run (kLayoutAckPageRuns): a kPage frame over whole host pages of a 4 KiB block, at
// most kMaxPageRun bytes, inside the block; never over 2 MiB host pages.
TEST(Wire, PageRunsAreWholeSmallHostPagesUpToTheirLimit) {
  Layout l = two_blocks();
  l.blocks.push_back({"ram2", 4u << 20, 4096});
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kPage, 1, 0, 8192), l).is_ok());
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kPage, 1, 0, 64u << 10), l).is_ok());
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kPage, 2, 4096, kMaxPageRun), l).is_ok());
  EXPECT_FALSE(
      check_page_frame(make_header(FrameType::kPage, 2, 0, kMaxPageRun + 4096), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 1, 4096, 64u << 10), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 0, 0, 4u << 20), l).is_ok());
}

// A kZero frame may cover whole host pages (a never-populated run), never more than its block.
TEST(Wire, ZeroRangesAreWholeHostPagesInsideTheBlock) {
  Layout l = two_blocks();
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kZero, 1, 0, 64u << 10), l).is_ok());
  EXPECT_TRUE(check_page_frame(make_header(FrameType::kZero, 0, 2u << 20, 6u << 20), l).is_ok());
  EXPECT_TRUE(check_header(make_header(FrameType::kZero, 0, 0, kMaxZeroRange)).is_ok());
  EXPECT_FALSE(check_header(make_header(FrameType::kZero, 0, 0, kMaxZeroRange + 4096)).is_ok());
  // Past the end, not host-page aligned, a partial host page at either end.
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kZero, 1, 4096, 64u << 10), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kZero, 0, 2u << 20, 8u << 20), l).is_ok());
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kZero, 0, 4096, 4u << 20), l).is_ok());
  EXPECT_FALSE(
      check_page_frame(make_header(FrameType::kZero, 0, 0, (4u << 20) + 4096), l).is_ok());
  EXPECT_FALSE(
      check_page_frame(make_header(FrameType::kZero, 0, ~uint64_t{0} - 4095, 4u << 20), l).is_ok());
  // Page data spans 2 MiB host pages never (4 KiB ones only as a page run, below).
  EXPECT_FALSE(check_page_frame(make_header(FrameType::kPage, 0, 0, 4u << 20), l).is_ok());
}

TEST(Wire, LayoutRoundTripAndMalformedInput) {
  Layout l = two_blocks();
  auto bytes = encode_layout(l);
  auto back = decode_layout(bytes.data(), bytes.size());
  ASSERT_TRUE(back.is_ok()) << back.status().to_string();
  ASSERT_EQ(back->blocks.size(), 2u);
  EXPECT_EQ(back->blocks[1].name, "ram1");
  EXPECT_EQ(back->blocks[0].host_page_size, 2u << 20);
  // Every truncation fails cleanly.
  for (size_t n = 0; n < bytes.size(); ++n) EXPECT_FALSE(decode_layout(bytes.data(), n).is_ok());
  // Random garbage never crashes and never yields an invalid layout.
  std::mt19937 rng(1);
  for (int i = 0; i < 2000; ++i) {
    std::vector<uint8_t> junk(rng() % 64);
    for (auto& b : junk) b = static_cast<uint8_t>(rng());
    auto r = decode_layout(junk.data(), junk.size());
    if (r.is_ok()) {
      for (auto& b : r->blocks) EXPECT_EQ(b.size % b.host_page_size, 0u);
    }
  }
}

TEST(Wire, RangesAreCheckedAgainstLayout) {
  Layout l = two_blocks();
  std::vector<Range> good = {{0, 2u << 20, 2u << 20}, {1, 4096, 8192}};
  auto bytes = encode_ranges(good);
  auto back = decode_ranges(bytes.data(), bytes.size(), l);
  ASSERT_TRUE(back.is_ok());
  EXPECT_EQ(back->size(), 2u);
  auto bad = encode_ranges({{0, 4096, 4096}});  // not a host page of a 2M block
  EXPECT_FALSE(decode_ranges(bad.data(), bad.size(), l).is_ok());
  bad = encode_ranges({{5, 0, 4096}});
  EXPECT_FALSE(decode_ranges(bad.data(), bad.size(), l).is_ok());
  bad = encode_ranges({{1, 60u << 10, 8192}});
  EXPECT_FALSE(decode_ranges(bad.data(), bad.size(), l).is_ok());
}

}  // namespace
}  // namespace tern
