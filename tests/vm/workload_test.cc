#include "vm/workload.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

TEST(WorkloadSpec, ParsesTheCliExample) {
  auto r = parse_workload("vcpus=2,ram=1G,page=4K,wss=25%,rate=20000,pattern=random,seed=1");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->vcpus, 2u);
  EXPECT_EQ(r->ram_bytes, uint64_t{1} << 30);
  EXPECT_EQ(r->page_size, kSmallPage);
  EXPECT_DOUBLE_EQ(r->wss_fraction, 0.25);
  EXPECT_EQ(r->wss_bytes, 0u);
  EXPECT_EQ(r->rate, 20000u);
  EXPECT_EQ(r->pattern, Pattern::kRandom);
  EXPECT_EQ(r->seed, 1u);
  EXPECT_EQ(r->describe(), "threads: 2 vCPUs, 1 GiB, 4K pages, wss 256 MiB, random, "
                           "20000 pages/s/vCPU");
}

TEST(WorkloadSpec, ParsesEveryKeyAndRoundTrips) {
  auto r = parse_workload(" vcpus=4, ram=64MiB ,page=2M,wss=16M,rate=0,pattern=hotset,"
                          "hot=80/20,read=30%,seed=99,ring=256,backing=memfd");
  ASSERT_TRUE(r) << r.status().to_string();
  EXPECT_EQ(r->page_size, kHugePage);
  EXPECT_EQ(r->wss_bytes, uint64_t{16} << 20);
  EXPECT_EQ(r->pattern, Pattern::kHotset);
  EXPECT_EQ(r->hot_write_pct, 80u);
  EXPECT_EQ(r->hot_set_pct, 20u);
  EXPECT_EQ(r->read_pct, 30u);
  EXPECT_EQ(r->ring_entries, 256u);
  EXPECT_EQ(r->backing, RamBacking::kMemfd);
  auto again = parse_workload(r->to_string());
  ASSERT_TRUE(again) << again.status().to_string();
  EXPECT_EQ(*again, *r);

  auto frac = parse_workload("wss=0.3,pattern=sequential");
  ASSERT_TRUE(frac);
  auto frac2 = parse_workload(frac->to_string());
  ASSERT_TRUE(frac2) << frac->to_string();
  EXPECT_EQ(*frac2, *frac);
  auto empty = parse_workload("");
  ASSERT_TRUE(empty);
  EXPECT_EQ(*empty, WorkloadSpec{});
  EXPECT_EQ(*parse_workload(WorkloadSpec{}.to_string()), WorkloadSpec{});
}

TEST(WorkloadSpec, ErrorsNameTheBadKeyAndValue) {
  struct Case {
    const char* text;
    const char* must_mention;
  } cases[] = {
      {"vcpus=0", "'vcpus'"},          {"vcpus=two", "'two'"},
      {"ram=1X", "'ram'"},             {"page=8K", "'page'"},
      {"wss=150%", "'wss'"},           {"wss=abc", "'abc'"},
      {"rate=-5", "'rate'"},           {"pattern=zigzag", "'zigzag'"},
      {"hot=90", "'hot'"},             {"read=101%", "'read'"},
      {"ring=100", "'ring'"},          {"color=blue", "unknown key 'color'"},
      {"vcpus", "not key=value"},      {"ram=4K,vcpus=8", "too small"},
      {"ram=6K", "multiple"},          {"ram=4M,wss=8M", "larger than 'ram'"},
      {"backing=file", "'backing'"},
  };
  for (const Case& c : cases) {
    auto r = parse_workload(c.text);
    ASSERT_FALSE(r) << c.text;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument);
    EXPECT_NE(r.status().message().find(c.must_mention), std::string::npos)
        << c.text << " -> " << r.status().message();
  }
}

TEST(WorkloadSpec, Sizes) {
  EXPECT_EQ(*parse_size("4096"), 4096u);
  EXPECT_EQ(*parse_size("4K"), 4096u);
  EXPECT_EQ(*parse_size("2m"), 2u << 20);
  EXPECT_EQ(*parse_size("1GiB"), 1u << 30);
  EXPECT_EQ(*parse_size("3GB"), uint64_t{3} << 30);
  EXPECT_FALSE(parse_size(""));
  EXPECT_FALSE(parse_size("K"));
  EXPECT_FALSE(parse_size("1Q"));
  EXPECT_FALSE(parse_size("99999999999T"));
  EXPECT_EQ(format_bytes(uint64_t{1} << 30), "1 GiB");
  EXPECT_EQ(format_bytes(6u << 20), "6 MiB");
  EXPECT_EQ(format_bytes(5000), "5000 B");
}

}  // namespace
}  // namespace tern
