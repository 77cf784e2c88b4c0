// Thread guest across a "migration" done by memcpy: state save/load, continuation of the same
// workload, verification on the destination (whole memory and first touch), hugetlb pages.
#include <gtest/gtest.h>

#include <chrono>
#include <cstring>
#include <thread>

#include "vm/page_content.h"
#include "vm/self_check.h"
#include "vm/state_codec.h"
#include "vm/thread_guest.h"

namespace tern {
namespace {

using namespace std::chrono_literals;

std::unique_ptr<ThreadGuest> make_guest(const std::string& spec_text) {
  auto spec = parse_workload(spec_text);
  EXPECT_TRUE(spec) << spec.status().to_string();
  auto g = ThreadGuest::create(*spec);
  EXPECT_TRUE(g) << g.status().to_string();
  return g ? std::move(g).value() : nullptr;
}

std::unique_ptr<Guest> make_destination(const Guest& src) {
  auto d = make_thread_guest_factory()(src.layout());
  EXPECT_TRUE(d) << d.status().to_string();
  return std::move(d).value();
}

void copy_ram(const Guest& src, Guest& dst) {
  std::memcpy(dst.ram()[0]->base(), src.ram()[0]->base(), src.ram()[0]->size());
}

ThreadGuest& as_thread(Guest& g) { return static_cast<ThreadGuest&>(g); }

// A destination guest's check of its own pages (vm/self_check.h), as ternd runs it.
SelfCheck& checker(Guest& g) {
  SelfCheck* c = self_check(g);
  EXPECT_NE(c, nullptr) << "a thread guest checks its own pages";
  return *c;
}

TEST(ThreadGuestMigration, SaveLoadContinuesTheSameSequence) {
  auto a = make_guest("vcpus=2,ram=16M,wss=50%,pattern=hotset,read=20%,seed=7");
  ASSERT_TRUE(a->run_ops(300));
  std::vector<uint8_t> state = a->save_state();
  ASSERT_FALSE(state.empty());

  auto b = make_destination(*a);
  EXPECT_EQ(b->describe(), "threads: awaiting state, 16 MiB, 4K pages");
  EXPECT_FALSE(b->start()) << "no workload before load_state";
  copy_ram(*a, *b);
  ASSERT_TRUE(b->load_state(state));
  EXPECT_EQ(b->save_state(), state);
  EXPECT_EQ(b->describe(), a->describe());

  ASSERT_TRUE(as_thread(*b).run_ops(700));
  ASSERT_TRUE(a->run_ops(700));
  EXPECT_EQ(b->save_state(), a->save_state());
  EXPECT_EQ(std::memcmp(a->ram()[0]->base(), b->ram()[0]->base(), a->ram()[0]->size()), 0)
      << "the destination wrote exactly what the source would have";

  VerifyReport rep = checker(*b).verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
  EXPECT_EQ(rep.pages_checked, as_thread(*b).target_pages() - as_thread(*b).table_pages());
  EXPECT_GT(rep.touched_checked, 50u);
  EXPECT_EQ(rep.touched_mismatches, 0u) << rep.first_mismatch;
  EXPECT_GT(as_thread(*b).vcpu_stats(0).reads, 0u);
  EXPECT_EQ(a->verify_counters().touched_checked, 0u) << "the source does not check on touch";
  // Every checked first touch has its wait time in the histogram; the source records none.
  EXPECT_EQ(checker(*b).verify_counters().first_touch_latency.total, rep.touched_checked);
  EXPECT_EQ(a->verify_counters().first_touch_latency.total, 0u);
}

TEST(ThreadGuestMigration, CorruptedPagesAreReported) {
  auto a = make_guest("vcpus=1,ram=8M,wss=25%,pattern=sequential");
  ASSERT_TRUE(a->run_ops(400));
  auto b = make_destination(*a);
  copy_ram(*a, *b);
  ASSERT_TRUE(b->load_state(a->save_state()));
  ThreadGuest& t = as_thread(*b);
  const uint64_t p = t.table_pages() + 10;   // written once (version 1)
  const uint64_t q = t.table_pages() + 20;
  ASSERT_EQ(t.page_version(p), 1u);
  b->ram()[0]->base()[p * 4096 + 100] ^= 0x40;                  // corrupt content
  reinterpret_cast<uint32_t*>(b->ram()[0]->base())[q] = 2;     // stale page vs table
  VerifyReport rep = checker(*b).verify();
  EXPECT_EQ(rep.mismatches, 2u);
  EXPECT_EQ(rep.first_mismatch, "page " + std::to_string(p) +
                                    ": checksum mismatch at version 1 (content corrupt at byte 96)");
  // The destination vCPU finds them on first touch too (sequential: it touches every page).
  ASSERT_TRUE(t.run_ops(400 + t.working_set_pages()));
  VerifyReport touch = checker(*b).verify_counters();
  EXPECT_EQ(touch.touched_checked, t.working_set_pages());
  EXPECT_EQ(touch.touched_mismatches, 2u);
  EXPECT_EQ(touch.first_mismatch.rfind("first touch: page " + std::to_string(p), 0), 0u)
      << touch.first_mismatch;
}

TEST(ThreadGuestMigration, VerifyReportsTheLowestBadPageOfALargeGuest) {
  auto a = make_guest("vcpus=2,ram=64M,pattern=sequential");
  ASSERT_TRUE(a->run_ops(a->working_set_pages() / 2));  // every data page written once
  ThreadGuest& t = *a;
  uint8_t* base = a->ram()[0]->base();
  const uint64_t last = t.target_pages() - 1, early = t.table_pages() + 5;
  ASSERT_EQ(t.page_version(last), 1u);
  std::memcpy(base + last * 4096, base + early * 4096, 4096);  // a misplaced copy
  base[early * 4096 + 4000] ^= 2;
  VerifyReport rep = a->verify();
  EXPECT_EQ(rep.pages_checked, t.target_pages() - t.table_pages());
  EXPECT_EQ(rep.mismatches, 2u);
  EXPECT_EQ(rep.first_mismatch.rfind("page " + std::to_string(early) + ": checksum", 0), 0u)
      << rep.first_mismatch;
  std::memset(base + early * 4096, 0, 4096);
  fill_page(base + early * 4096, early, 1);
  rep = a->verify();
  EXPECT_EQ(rep.mismatches, 1u);
  EXPECT_EQ(rep.first_mismatch, "page " + std::to_string(last) + ": header says page " +
                                    std::to_string(early) + " (misplaced page)");
}

TEST(ThreadGuestMigration, LoadStateRejectsGarbage) {
  auto a = make_guest("vcpus=2,ram=8M");
  ASSERT_TRUE(a->run_ops(10));
  std::vector<uint8_t> good = a->save_state();
  auto b = make_destination(*a);
  Status s = b->load_state({});
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_NE(s.message().find("empty"), std::string::npos) << s.message();
  s = b->load_state(std::vector<uint8_t>(100, 0xab));
  EXPECT_NE(s.message().find("magic"), std::string::npos) << s.message();
  std::vector<uint8_t> flipped = good;
  flipped[30] ^= 1;
  s = b->load_state(flipped);
  EXPECT_NE(s.message().find("checksum"), std::string::npos) << s.message();
  s = b->load_state(std::vector<uint8_t>(good.begin(), good.begin() + 20));
  EXPECT_FALSE(s);
  auto other = make_guest("vcpus=2,ram=16M");
  ASSERT_TRUE(other->run_ops(1));
  s = b->load_state(other->save_state());
  EXPECT_NE(s.message().find("RAM block is 8 MiB"), std::string::npos) << s.message();
  // A vCPU's progress out of range (cursor past its pages): refused, naming the vCPU (the
  // message was once built from the vCPU after it had been freed; fuzz target guest_state).
  std::vector<uint8_t> bad_cursor = good;
  const size_t last_vcpu = bad_cursor.size() - 8 - 40;  // its record: rng, cursor, ...
  const uint64_t far = uint64_t{1} << 40;
  std::memcpy(bad_cursor.data() + last_vcpu + 8, &far, 8);
  const uint64_t sum = state_checksum(
      std::span<const uint8_t>(bad_cursor.data(), bad_cursor.size() - 8));
  std::memcpy(bad_cursor.data() + bad_cursor.size() - 8, &sum, 8);
  s = b->load_state(bad_cursor);
  EXPECT_EQ(s.code(), Code::kProtocol);
  EXPECT_EQ(s.message(), "thread guest state: vCPU 1 progress out of range");
  EXPECT_TRUE(b->load_state(good)) << "a failed load leaves the guest loadable";
  a->start().is_ok();
  EXPECT_TRUE(a->save_state().empty()) << "no state while running";
  a->pause();
}

// The whole precopy loop by memcpy, while the source runs: round 1 copies everything, later
// rounds copy what collect_dirty reported; then pause, last collect, last copy, state.
TEST(ThreadGuestMigration, LivePrecopyByMemcpyVerifies) {
  auto a = make_guest("vcpus=3,ram=16M,wss=50%,rate=5000,pattern=hotset,seed=11,ring=64");
  auto b = make_destination(*a);
  std::vector<uint32_t> sizes_ps{kSmallPage};
  std::vector<uint64_t> sizes{a->ram()[0]->size()};
  MigrationBitmap bm(sizes_ps, sizes);
  ASSERT_TRUE(a->start_dirty_log());
  ASSERT_TRUE(a->start());
  bm.set_all();
  auto send = [&] {
    uint64_t n = 0;
    for (uint64_t hp = bm.block(0).find_next_set(0); hp < bm.block(0).size();
         hp = bm.block(0).find_next_set(hp + 1)) {
      if (!bm.claim(0, hp)) continue;
      copy_page_relaxed(b->ram()[0]->base() + hp * 4096, a->ram()[0]->base() + hp * 4096);
      ++n;
    }
    return n;
  };
  for (int round = 0; round < 5; ++round) {
    send();
    std::this_thread::sleep_for(10ms);
    a->collect_dirty(bm);
  }
  a->pause();
  a->collect_dirty(bm);
  send();
  a->stop_dirty_log();
  ASSERT_TRUE(b->load_state(a->save_state()));
  VerifyReport rep = checker(*b).verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
  EXPECT_EQ(std::memcmp(a->ram()[0]->base(), b->ram()[0]->base(), a->ram()[0]->size()), 0);
  // The destination continues where the source stopped.
  ASSERT_TRUE(b->start());
  std::this_thread::sleep_for(20ms);
  b->pause();
  rep = checker(*b).verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
  EXPECT_GT(rep.touched_checked, 0u);
  EXPECT_EQ(rep.touched_mismatches, 0u) << rep.first_mismatch;
}

TEST(ThreadGuestMigration, HugePages2M) {
  auto reserved = reserve_huge_pages(8);  // 4 for the source, 4 for the destination
  if (!reserved) GTEST_SKIP() << "2 MiB hugetlb pages unavailable: " << reserved.status().to_string();
  std::printf("%s\n", reserved.value().c_str());
  auto spec = parse_workload("vcpus=2,ram=8M,page=2M,pattern=random,seed=2");
  ASSERT_TRUE(spec);
  auto a = ThreadGuest::create(*spec);
  if (!a) GTEST_SKIP() << "cannot map hugetlb guest RAM: " << a.status().to_string();
  EXPECT_TRUE((*a)->ram()[0]->hugetlb());
  ASSERT_TRUE((*a)->start_dirty_log());
  ASSERT_TRUE((*a)->run_ops(200));
  MigrationBitmap bm({kHugePage}, {8u << 20});
  EXPECT_GT((*a)->collect_dirty(bm), 0u);
  EXPECT_EQ(bm.dirty_host_pages(), 4u);  // random over the whole 8 MiB: every 2M page
  auto d = make_thread_guest_factory()((*a)->layout());
  if (!d) GTEST_SKIP() << "cannot map hugetlb destination RAM: " << d.status().to_string();
  copy_ram(**a, **d);
  ASSERT_TRUE((*d)->load_state((*a)->save_state()));
  ASSERT_TRUE(as_thread(**d).run_ops(300));
  VerifyReport rep = checker(**d).verify();
  EXPECT_EQ(rep.mismatches, 0u) << rep.first_mismatch;
  EXPECT_GT(rep.touched_checked, 0u);
}

}  // namespace
}  // namespace tern
