// Thread guest heap (WorkloadSpec free=, reuse=) and its free page reporting (S5).
#include <gtest/gtest.h>

#include <cstring>

#include "vm/page_content.h"
#include "vm/thread_guest.h"

namespace tern {
namespace {

std::unique_ptr<ThreadGuest> make_guest(const char* spec_text) {
  auto spec = parse_workload(spec_text);
  EXPECT_TRUE(spec) << spec.status().to_string();
  auto g = ThreadGuest::create(*spec);
  EXPECT_TRUE(g) << g.status().to_string();
  return std::move(g).value();
}

std::vector<bool> pages_of(const std::vector<Range>& ranges, uint64_t pages) {
  std::vector<bool> out(pages);
  for (const Range& r : ranges) {
    EXPECT_EQ(r.block, 0u);
    for (uint64_t o = r.offset; o < r.offset + r.length; o += kSmallPage) out[o / kSmallPage] = true;
  }
  return out;
}

TEST(ThreadGuestHeap, SpecRoundTrip) {
  auto s = parse_workload("ram=16M,free=75%,reuse=5");
  ASSERT_TRUE(s);
  EXPECT_EQ(s->free_pct, 75u);
  EXPECT_EQ(s->reuse_pct, 5u);
  auto again = parse_workload(s->to_string());
  ASSERT_TRUE(again);
  EXPECT_EQ(*again, *s);
  EXPECT_FALSE(parse_workload("free=101%"));
  EXPECT_EQ(parse_workload("ram=16M")->to_string().find("free"), std::string::npos);
}

TEST(ThreadGuestHeap, FreesItsShareReportsItOnceAndSkipsItInTheCheck) {
  for (const char* page : {"4K", "2M"}) {
    if (std::string(page) == "2M" && !reserve_huge_pages(40).is_ok()) continue;
    auto g = make_guest((std::string("vcpus=2,ram=64M,wss=100%,free=75%,seed=5,page=") + page).c_str());
    ASSERT_TRUE(g->prefill());
    const uint64_t data = g->working_set_pages();
    const uint64_t free = g->free_pages();
    EXPECT_GT(free, data * 6 / 10) << page;
    EXPECT_LT(free, data * 9 / 10) << page;
    std::vector<Range> hints;
    EXPECT_EQ(g->take_free_pages(hints), 0u) << "reports only once reporting started";
    ASSERT_TRUE(g->start_free_page_reporting());
    EXPECT_EQ(g->take_free_pages(hints), free);
    auto hinted = pages_of(hints, g->target_pages());
    for (uint64_t p = 0; p < g->target_pages(); ++p) {
      ASSERT_EQ(hinted[p], g->page_free(p)) << p;
      if (hinted[p]) { ASSERT_TRUE(g->page_version(p) & ThreadGuest::kFreeBit); }
    }
    if (std::string(page) == "2M")  // whole huge pages are freed
      for (const Range& r : hints) { EXPECT_EQ(r.offset % kHugePage, 0u); }
    hints.clear();
    EXPECT_EQ(g->take_free_pages(hints), 0u) << "nothing freed since the last take";
    // The content of a freed page is dead: scribbling on it does not fail the self check.
    uint64_t p = g->table_pages();
    while (!g->page_free(p)) ++p;
    std::memset(g->ram()[0]->base() + p * kSmallPage, 0xab, kSmallPage);
    VerifyReport v = g->verify();
    EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
    EXPECT_EQ(v.pages_checked, g->target_pages() - g->table_pages() - free);
    g->stop_free_page_reporting();
  }
}

// While the heap churns, a take reports only pages free at that moment; a page reused after a
// take is written with new content (the check covers it), and a page freed after a take comes
// in the next one.
TEST(ThreadGuestHeap, ChurnReusesAndFreesAndTheReportFollows) {
  auto g = make_guest("vcpus=2,ram=32M,wss=100%,free=75%,reuse=20%,seed=9");
  ASSERT_TRUE(g->prefill());
  ASSERT_TRUE(g->start_free_page_reporting());
  std::vector<Range> first;
  g->take_free_pages(first);
  auto was_free = pages_of(first, g->target_pages());
  ASSERT_TRUE(g->run_ops(20000));
  uint64_t reuses = 0, frees = 0;
  for (uint32_t i = 0; i < g->vcpus(); ++i) {
    reuses += g->vcpu_stats(i).reuses;
    frees += g->vcpu_stats(i).frees;
  }
  EXPECT_GT(reuses, 1000u);
  EXPECT_GT(frees, 1000u);
  std::vector<Range> second;
  g->take_free_pages(second);
  auto now_free = pages_of(second, g->target_pages());
  uint64_t reused = 0;
  for (uint64_t p = 0; p < g->target_pages(); ++p) {
    if (now_free[p]) { ASSERT_TRUE(g->page_free(p)) << "page " << p << " reported but in use"; }
    if (was_free[p] && !g->page_free(p)) {
      ++reused;
      ASSERT_FALSE(g->page_version(p) & ThreadGuest::kFreeBit);
      ASSERT_GE(g->page_version(p), 2u) << "a reused page holds a new version";
    }
  }
  EXPECT_GT(reused, 0u);
  VerifyReport v = g->verify();
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
}

// The heap's free set travels in the saved state: the destination's vCPUs go on avoiding
// freed pages and its check skips them.
TEST(ThreadGuestHeap, FreeSetTravelsInTheState) {
  auto g = make_guest("vcpus=2,ram=16M,wss=100%,free=50%,reuse=10%,seed=2");
  ASSERT_TRUE(g->run_ops(2000));
  auto d = ThreadGuest::create_incoming(g->layout());
  ASSERT_TRUE(d);
  std::memcpy((*d)->ram()[0]->base(), g->ram()[0]->base(), g->ram()[0]->size());
  ASSERT_TRUE((*d)->load_state(g->save_state()));
  EXPECT_EQ((*d)->free_pages(), g->free_pages());
  ASSERT_TRUE((*d)->run_ops(4000));
  VerifyReport v = (*d)->verify();
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
  EXPECT_EQ(v.touched_mismatches, 0u) << v.first_mismatch;
}

}  // namespace
}  // namespace tern
