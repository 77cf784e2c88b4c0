// S5 on the source, deterministic: the free page filter between a scripted guest (its writes
// and frees are explicit calls, logged and reported as a guest's would be) and the migration
// bitmap, with a real sender over loopback for the hint that races the send of its page.
#include "dataplane/engine/free_page_filter.h"

#include <gtest/gtest.h>

#include <cstring>

#include "tests/dataplane/engine_fixture.h"

namespace tern::engine {
namespace {

using namespace testing_support;

// A guest whose vCPU is the test: write() changes a page and logs it while the dirty log is on,
// free() reports it while reporting is on. Calls to the Guest interface are recorded in order.
class ScriptedGuest : public Guest {
 public:
  explicit ScriptedGuest(std::unique_ptr<RamBlock> block) : block_(std::move(block)) {
    view_.push_back(block_.get());
  }
  const std::vector<RamBlock*>& ram() const override { return view_; }
  Status start() override { return Status::ok(); }
  void pause() override {}
  bool running() const override { return false; }
  Status start_dirty_log() override {
    calls.push_back("start_dirty_log");
    logging_ = true;
    return Status::ok();
  }
  void stop_dirty_log() override {
    calls.push_back("stop_dirty_log");
    logging_ = false;
  }
  uint64_t collect_dirty(MigrationBitmap& bitmap) override {
    calls.push_back("collect_dirty");
    for (uint64_t p : logged_) bitmap.mark_target(0, p);
    uint64_t n = logged_.size();
    logged_.clear();
    return n;
  }
  bool reports_free_pages() const override { return true; }
  Status start_free_page_reporting() override {
    calls.push_back("start_reporting");
    reporting_ = true;
    return Status::ok();
  }
  uint64_t take_free_pages(std::vector<Range>& out) override {
    calls.push_back("take");
    out.insert(out.end(), reported_.begin(), reported_.end());
    uint64_t n = 0;
    for (const Range& r : reported_) n += r.length / kTargetPageSize;
    reported_.clear();
    return n;
  }
  void stop_free_page_reporting() override {
    calls.push_back("stop_reporting");
    reporting_ = false;
  }
  std::vector<uint8_t> save_state() override { return {}; }
  Status load_state(const std::vector<uint8_t>&) override { return Status::ok(); }
  std::string describe() const override { return "scripted"; }

  void write(uint64_t target_page, uint8_t value) {
    std::memset(block_->base() + target_page * kTargetPageSize, value, kTargetPageSize);
    if (logging_) logged_.push_back(target_page);
  }
  // Reports target pages [first, first + count) free (as they are now, unwritten since).
  void free(uint64_t first, uint64_t count) {
    if (reporting_) reported_.push_back({0, first * kTargetPageSize, count * kTargetPageSize});
  }
  void report_raw(Range r) { reported_.push_back(r); }

  std::vector<std::string> calls;

 private:
  std::unique_ptr<RamBlock> block_;
  std::vector<RamBlock*> view_;
  bool logging_ = false, reporting_ = false;
  std::vector<uint64_t> logged_;
  std::vector<Range> reported_;
};

struct Rig {
  std::unique_ptr<ScriptedGuest> guest;
  std::unique_ptr<SendState> state;
};

Rig make(uint32_t page_size, uint64_t bytes) {
  auto b = RamBlock::create("ram", bytes, page_size);
  EXPECT_TRUE(b.is_ok()) << b.status().to_string();
  Rig s;
  s.guest = std::make_unique<ScriptedGuest>(std::move(*b));
  s.state = std::make_unique<SendState>(s.guest->ram(), 1);
  EXPECT_TRUE(s.guest->start_dirty_log());
  s.state->dirty.set_all();
  return s;
}

TEST(FreePageFilter, HintsAreClearedAtSync) {
  Rig s = make(kSmallPage, 64 * kSmallPage);
  FreePageFilter f(*s.guest, *s.state);
  ASSERT_TRUE(f.start());
  s.guest->free(10, 10);
  f.sync();
  const AtomicBitmap& dirty = s.state->dirty.block(0);
  for (uint64_t p = 0; p < 64; ++p) EXPECT_EQ(dirty.test(p), p < 10 || p >= 20) << p;
  EXPECT_EQ(f.counters().hints, 10u);
  EXPECT_EQ(f.counters().skipped, 10u);
  // Hints for pages already clean count as hints, not as skipped pages.
  s.guest->free(10, 2);
  f.sync();
  EXPECT_EQ(f.counters().hints, 12u);
  EXPECT_EQ(f.counters().skipped, 10u);
  f.stop();
  EXPECT_EQ(s.guest->calls.back(), "stop_reporting");
}

// The seed's rule: a page reported free and written afterwards shows up dirty and is sent.
// Hints are cleared first, then the dirty log applied; the other order would lose the write.
TEST(FreePageFilter, APageHintedThenWrittenIsSent) {
  Rig s = make(kSmallPage, 64 * kSmallPage);
  FreePageFilter f(*s.guest, *s.state);
  ASSERT_TRUE(f.start());
  s.state->dirty.clear_all();  // a later sync: everything sent once already
  s.guest->free(5, 3);         // pages 5, 6, 7 free
  s.guest->write(6, 0x66);     // the guest reuses page 6 before the host takes the report
  f.sync();
  const AtomicBitmap& dirty = s.state->dirty.block(0);
  EXPECT_TRUE(dirty.test(6)) << "a page written after its report must be sent";
  EXPECT_FALSE(dirty.test(5));
  EXPECT_FALSE(dirty.test(7));
  // take, then collect: at every sync.
  std::vector<std::string> want = {"start_dirty_log", "start_reporting", "take", "collect_dirty"};
  EXPECT_EQ(s.guest->calls, want);
}

// A huge page is skipped only when one take covers all of it; adjacent ranges add up.
TEST(FreePageFilter, HugePagesClearOnlyWhenWhollyFree) {
  if (!reserve_huge_pages(8).is_ok()) GTEST_SKIP() << "needs 2 MiB hugetlb pages";
  Rig s = make(kHugePage, 4 * kHugePage);
  FreePageFilter f(*s.guest, *s.state);
  ASSERT_TRUE(f.start());
  const uint64_t tp = kHugePage / kTargetPageSize;
  s.guest->free(0, tp - 1);           // host page 0 but its last target page
  s.guest->free(tp, tp / 2);          // host page 1 in two halves, reported apart
  s.guest->free(tp + tp / 2, tp / 2);
  s.guest->free(3 * tp, tp);          // host page 3 whole
  f.sync();
  const AtomicBitmap& dirty = s.state->dirty.block(0);
  EXPECT_TRUE(dirty.test(0));
  EXPECT_FALSE(dirty.test(1));
  EXPECT_TRUE(dirty.test(2));
  EXPECT_FALSE(dirty.test(3));
  EXPECT_EQ(f.counters().skipped, 2 * tp);
  // The rest of host page 0 in a later take: not pooled with the first (a page reused between
  // two takes would be lost), so host page 0 stays.
  s.guest->free(tp - 1, 1);
  f.sync();
  EXPECT_TRUE(dirty.test(0));
}

TEST(FreePageFilter, HintsOutsideRamAreRefused) {
  Rig s = make(kSmallPage, 64 * kSmallPage);
  FreePageFilter f(*s.guest, *s.state);
  ASSERT_TRUE(f.start());
  s.guest->report_raw({1, 0, kTargetPageSize});                      // no block 1
  s.guest->report_raw({0, 60 * kTargetPageSize, 8 * kTargetPageSize});  // runs past the end
  s.guest->report_raw({0, uint64_t{1} << 62, kTargetPageSize});      // far outside
  s.guest->report_raw({0, 100, kTargetPageSize});                    // misaligned
  s.guest->report_raw({0, 0, 0});                                    // empty
  s.guest->report_raw({0, 2 * kTargetPageSize, kTargetPageSize});    // fine
  f.sync();
  EXPECT_EQ(f.counters().refused, 5u);
  EXPECT_EQ(f.counters().hints, 1u);
  EXPECT_NE(f.first_refusal().find("refused"), std::string::npos) << f.first_refusal();
  const AtomicBitmap& dirty = s.state->dirty.block(0);
  for (uint64_t p = 0; p < 64; ++p) EXPECT_EQ(dirty.test(p), p != 2) << p;
}

// A hint that comes while a bulk lane is part-way through that very page. The lane finishes the
// page whole (S2: no partial huge page at the destination; the filter never touches a lane),
// and the filter keeps the page's bit, set by a write made during the send and applied at an
// earlier sync: the next round sends it again, so the destination ends with the last write.
TEST(FreePageFilter, AHintRacingTheSendOfThatPageDoesNotCorruptIt) {
  auto r = reserve_huge_pages(8);
  if (!r.is_ok()) GTEST_SKIP() << "needs 2 MiB hugetlb pages: " << r.status().to_string();
  Rig s = make(kHugePage, 2 * kHugePage);
  RamBlock* block = s.guest->ram()[0];
  std::memset(block->base(), 1, block->size());
  Layout layout;
  layout.blocks.push_back({"ram", block->size(), kHugePage});
  std::vector<uint8_t> dest(block->size());
  Landing landing({{dest.data(), dest.size(), kHugePage}});
  static int n = 0;
  Wired w = wire_loopback("fph-" + std::to_string(++n), 3);
  for (auto& c : w.dst) c->set_landing(&landing);
  for (auto& c : w.src) c->set_landing(&landing);
  SendCounters counters;
  SendState& st = *s.state;
  st.round = 1;
  SenderPoller sender(st, counters, layout, nullptr, {{w.src[2].get(), 0}}, 1.0);
  FreePageFilter f(*s.guest, st);
  ASSERT_TRUE(f.start());

  sender.poll();  // round 1: host page 0's first chunks go
  ASSERT_EQ(st.slots[0].in_progress.load(), page_key(0, 0)) << "lane is mid host page 0";
  uint64_t bytes_hp0 = 0;
  for (const Seen& x : drain(*w.dst[2])) bytes_hp0 += x.hdr.length;
  // Meanwhile the guest writes page 0 (in the part already sent), a sync applies that write,
  // and then the guest frees the page and reports it.
  s.guest->write(3, 0x33);
  f.sync();
  ASSERT_TRUE(st.dirty.block(0).test(0));
  s.guest->free(0, kHugePage / kTargetPageSize);
  f.sync();
  EXPECT_TRUE(st.dirty.block(0).test(0)) << "a page in flight keeps its bit";
  EXPECT_EQ(f.counters().in_flight, 1u);

  auto run_round = [&](uint32_t round) {
    if (st.round != round) {  // round 1 is under way already
      st.cursor = 0;
      st.round = round;
    }
    for (int i = 0; i < 10000 && st.slots[0].round_done.load() != round; ++i) {
      sender.poll();
      for (const Seen& x : drain(*w.dst[2]))
        if (round == 1 && x.hdr.offset < kHugePage) bytes_hp0 += x.hdr.length;
    }
    for (int i = 0; i < 100; ++i) drain(*w.dst[2]);
  };
  run_round(1);
  EXPECT_EQ(bytes_hp0, uint64_t{kHugePage}) << "the lane finished host page 0 whole";
  run_round(2);
  EXPECT_EQ(st.slots[0].round_done.load(), 2u);
  EXPECT_EQ(0, std::memcmp(dest.data(), block->base(), kHugePage))
      << "the destination holds host page 0 as the guest last wrote it";
}

}  // namespace
}  // namespace tern::engine
