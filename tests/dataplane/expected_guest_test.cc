// Bounded commitments (dataplane/expected_guest.h): an announced layout that does not match
// the guest the destination expects is refused before the guest factory runs.
#include "dataplane/expected_guest.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

Layout layout_of(std::initializer_list<uint64_t> sizes) {
  Layout l;
  for (uint64_t s : sizes) l.blocks.push_back({"b" + std::to_string(l.blocks.size()), s, 4096});
  return l;
}

TEST(ExpectedGuest, ExactSizeMustMatch) {
  ExpectedGuest e{.ram_bytes = 256u << 20};
  EXPECT_TRUE(check_announced_layout(layout_of({128u << 20, 128u << 20}), e).is_ok());
  Status s = check_announced_layout(layout_of({512u << 20}), e);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("expects 256 MiB"), std::string::npos) << s.message();
}

TEST(ExpectedGuest, BoundRefusesHugeAndMalformedLayouts) {
  ExpectedGuest e{.max_ram_bytes = 1ull << 30};
  EXPECT_TRUE(check_announced_layout(layout_of({1ull << 30}), e).is_ok());
  EXPECT_FALSE(check_announced_layout(layout_of({64ull << 40}), e).is_ok());  // 64 TiB
  EXPECT_FALSE(check_announced_layout(layout_of({}), e).is_ok());
  EXPECT_FALSE(check_announced_layout(layout_of({0}), e).is_ok());
  EXPECT_FALSE(check_announced_layout(layout_of({~0ull, 8192}), e).is_ok());  // overflow
  Layout many;
  for (size_t i = 0; i <= kMaxLayoutBlocks; ++i) many.blocks.push_back({"b", 4096, 4096});
  EXPECT_FALSE(check_announced_layout(many, e).is_ok());
}

TEST(ExpectedGuest, FactoryRunsOnlyForLayoutsThatFit) {
  int calls = 0;
  GuestFactory f = expecting(
      [&](const Layout&) -> Result<std::unique_ptr<Guest>> {
        ++calls;
        return Status(Code::kUnavailable, "test factory");
      },
      ExpectedGuest{.ram_bytes = 64u << 20});
  EXPECT_EQ(f(layout_of({1ull << 40})).status().code(), Code::kInvalidArgument);
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(f(layout_of({64u << 20})).status().code(), Code::kUnavailable);
  EXPECT_EQ(calls, 1);
}

}  // namespace
}  // namespace tern
