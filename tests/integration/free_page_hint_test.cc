// S5 end to end: a thread guest whose heap freed 75% of its memory, and keeps reusing and
// freeing pages while it moves, is migrated with the free-page-hint capability over loopback and
// tcp (the rdma suite builds this file for rdma; dpdk: tests/dpdk/ternd_dpdk_test.cc), in
// precopy and postcopy, with 4K and 2M pages. The destination checks every page in use
// (0 mismatches), the pages reused during the migration hold their new content there, and the
// freed pages were not sent. A second test checks the engine's order of calls on the guest.
#include <gtest/gtest.h>

#include <algorithm>

#include <mutex>

#include "tests/integration/migration_helpers.h"
#include "vm/page_content.h"

namespace tern {
namespace {

using namespace testing_support;

struct Case {
  std::string transport;
  std::string mode;  // precopy | postcopy
  uint32_t page;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  return info.param.transport + "_" + info.param.mode + "_" +
         (info.param.page == kHugePage ? "2M" : "4K");
}

// At most 256 MiB; 128 MiB in the rdma suite's VM (tiny scale), as 2M pages need enough huge
// pages that are wholly free (the version table's and those straddling two vCPUs' never are).
uint64_t hint_guest_bytes() {
  return tiny_scale() ? (128ull << 20) : std::min<uint64_t>(guest_bytes(), 256ull << 20);
}

WorkloadSpec hint_spec(uint32_t page) {
  WorkloadSpec spec;
  spec.vcpus = 2;
  spec.ram_bytes = hint_guest_bytes();
  spec.page_size = page;
  spec.wss_fraction = 1.0;
  spec.pattern = Pattern::kRandom;
  spec.free_pct = 75;
  // 4K: ~rate/10 pages/s per vCPU reused, as many freed. 2M: any write dirties a whole huge
  // page, and at the full rate every huge page in use is dirty again each round, so on a slow
  // link or a loaded host the resends (which hints cannot save) outgrow the bound below: the
  // guest writes 1/50 as often, half of it reusing or freeing pages. In the rdma suite's VM,
  // whose link moves 3-25 MB/s with the host's load, 4K guests write 1/5 as often and 2M guests
  // once a second, for the same reason.
  const uint32_t rate_4k = tiny_scale() ? dirty_rate() / 5 : dirty_rate();
  spec.rate = page == kHugePage ? (tiny_scale() ? 1 : dirty_rate() / 50) : rate_4k;
  spec.reuse_pct = page == kHugePage ? 50 : 10;
  return spec;
}

class FreePageHint : public ::testing::TestWithParam<Case> {};

TEST_P(FreePageHint, FreedPagesStayBehindAndReusedPagesArrive) {
  const Case& c = GetParam();
  const WorkloadSpec spec = hint_spec(c.page);
  if (std::string why = reserve_for(spec.ram_bytes, c.page); !why.empty())
    GTEST_SKIP() << "2M pages need hugetlb: " << why;
  auto guest = ThreadGuest::create(spec);
  ASSERT_TRUE(guest.is_ok()) << guest.status().to_string();
  ThreadGuest& src = **guest;
  ASSERT_TRUE(src.prefill().is_ok());  // every page written once; the heap freed its share
  const uint64_t pages = src.target_pages();
  std::vector<bool> free_at_start(pages);
  std::vector<uint32_t> version_at_start(pages);
  for (uint64_t p = 0; p < pages; ++p) {
    free_at_start[p] = src.page_free(p);
    version_at_start[p] = src.page_version(p);
  }
  const uint64_t freed = src.free_pages();
  ASSERT_GT(freed, (pages - src.table_pages()) * 6 / 10);
  ASSERT_TRUE(src.start().is_ok());

  MigrationParameters params;
  params.multifd_channels = 2;
  params.downtime_limit_ms = 100;
  params.workers = 1;
  // Postcopy: a first pass of about a second, so that the switch comes in its middle, with
  // pages reused meanwhile on the source.
  if (c.mode == "postcopy") params.max_bandwidth = spec.ram_bytes / 4;
  IncomingMigration incoming(make_thread_guest_factory(), params);
  auto uri = incoming.start(listen_uri(c.transport));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  MigrationCapabilities caps;
  caps.free_page_hint = true;
  caps.postcopy_ram = c.mode == "postcopy";
  OutgoingMigration outgoing(src, caps, params);
  ASSERT_TRUE(outgoing.start(*uri).is_ok());
  if (caps.postcopy_ram) {
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    Status s = outgoing.start_postcopy();
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }
  MigrationStatus ss = outgoing.wait(std::chrono::minutes(5));
  MigrationStatus ds = incoming.wait(std::chrono::minutes(1));
  MigrationInfo si = outgoing.info(), di = incoming.info();
  ASSERT_EQ(ss, MigrationStatus::kCompleted) << si.error << " / destination: " << di.error;
  ASSERT_EQ(ds, MigrationStatus::kCompleted) << di.error;

  // Every page in use arrived intact (the self check skips the pages marked free).
  Result<VerifyReport> checked = check_destination(incoming);
  ASSERT_TRUE(checked.is_ok()) << checked.status().to_string();
  EXPECT_EQ(checked->mismatches, 0u) << checked->first_mismatch;
  EXPECT_EQ(checked->touched_mismatches, 0u) << checked->first_mismatch;
  EXPECT_GT(checked->pages_checked, 0u);

  // The freed pages were reported and stayed behind: what moved is about the quarter in use.
  EXPECT_GE(si.stats.free_page_hints, freed * 9 / 10);
  EXPECT_GT(si.stats.free_pages_skipped, 0u);
  EXPECT_EQ(si.stats.free_page_hints_refused, 0u);
  // (Zero markers are not counted: in postcopy the free pages never sent go as zero ranges.)
  // What moved depends on how many rounds a loaded host needs (each resends what the guest
  // wrote meanwhile): a figure, not a check. The check is on the pages themselves, below.
  const uint64_t data_moved = si.stats.normal * kTargetPageSize;
  // 2M: a huge page is skipped only when all of it is free; `freed` also counts the pages freed
  // in huge pages still partly in use.
  EXPECT_GE(si.stats.free_pages_skipped, c.page == kHugePage ? freed * 8 / 10 : freed * 9 / 10)
      << "the first pass sent free pages";

  // Pages free when the migration began and reused by the source guest before it stopped
  // (written with a new version) hold that content, or a newer one, at the destination. (The
  // destination guest runs on: it may have freed a few of them again since.)
  auto* dst = dynamic_cast<ThreadGuest*>(incoming.guest());
  ASSERT_NE(dst, nullptr);
  dst->pause();
  uint64_t reused = 0, refreed = 0;
  std::string why;
  for (uint64_t p = src.table_pages(); p < pages; ++p) {
    if (!free_at_start[p] || src.page_free(p)) continue;
    ++reused;
    const uint32_t sv = src.page_version(p), dv = dst->page_version(p);
    ASSERT_GE(dv & ThreadGuest::kVersionMask, sv)
        << "page " << p << ": the destination holds an older version";
    if (dv & ThreadGuest::kFreeBit) {
      ++refreed;
      continue;
    }
    ASSERT_TRUE(check_page(dst->ram()[0]->base() + p * kSmallPage, p, dv, &why)) << why;
  }
  EXPECT_GT(reused - refreed, 0u) << "the guest reused no freed page during the migration";
  // Host pages the source guest never wrote while they were free (every target page in them
  // free from start to end, its version unchanged) stayed behind: the destination's copy is
  // still all zero (a page sent would hold its prefilled content). 2M: a huge page with one
  // page in use or reused goes whole, so only wholly free and untouched huge pages count.
  const uint64_t per_host = c.page / kSmallPage;
  // (Postcopy: nor the destination guest, which runs meanwhile: a page it writes is placed.)
  auto untouched = [&](uint64_t p) {
    return free_at_start[p] && src.page_free(p) && src.page_version(p) == version_at_start[p] &&
           dst->page_version(p) == version_at_start[p];
  };
  uint64_t stayed_free = 0, left_behind = 0;
  for (uint64_t h = (src.table_pages() + per_host - 1) / per_host; (h + 1) * per_host <= pages; ++h) {
    bool all = true;
    for (uint64_t p = h * per_host; p < (h + 1) * per_host && all; ++p) all = untouched(p);
    if (!all) continue;
    ++stayed_free;
    const auto* words = reinterpret_cast<const uint64_t*>(dst->ram()[0]->base() + h * c.page);
    left_behind += std::all_of(words, words + c.page / 8, [](uint64_t w) { return w == 0; });
  }
  // (A long migration on a loaded host may leave few such huge pages: the first pass's skips,
  // checked above, stand regardless.)
  EXPECT_GE(left_behind, stayed_free * 9 / 10)
      << "free pages were sent: only " << left_behind << " of " << stayed_free
      << " host pages free and untouched throughout are still unwritten at the destination";
  std::cout << "[ figures  ] " << case_name({c, 0}) << ": " << data_moved / 1048576
            << " MiB moved of " << spec.ram_bytes / 1048576 << " MiB in " << si.stats.total_time
            << " ms; hints " << si.stats.free_page_hints << ", skipped "
            << si.stats.free_pages_skipped << " pages; left behind " << left_behind << " of "
            << stayed_free << " host pages free throughout; reused during the migration " << reused
            << "; discarded " << si.stats.discarded_pages << "\n";
}

std::vector<Case> all_cases() {
  std::vector<Case> out;
  for (std::string t : {TERN_IT_TRANSPORTS})
    for (std::string m : {"precopy", "postcopy"})
      for (uint32_t p : {kSmallPage, kHugePage}) out.push_back({t, m, p});
  return out;
}
INSTANTIATE_TEST_SUITE_P(Migrations, FreePageHint, ::testing::ValuesIn(all_cases()), case_name);

// The engine's order on the guest (S5): dirty log on, then reporting, then hints; at every sync
// the hints are taken before the dirty log is collected; reporting stops before the log does.
// A thread guest behind a recorder of the calls.
class RecordingGuest : public Guest {
 public:
  explicit RecordingGuest(ThreadGuest& g) : g_(g) {}
  const std::vector<RamBlock*>& ram() const override { return g_.ram(); }
  Status start() override { return g_.start(); }
  void pause() override { g_.pause(); }
  bool running() const override { return g_.running(); }
  Status start_dirty_log() override { return note("start_dirty_log"), g_.start_dirty_log(); }
  void stop_dirty_log() override { note("stop_dirty_log"), g_.stop_dirty_log(); }
  uint64_t collect_dirty(MigrationBitmap& b) override {
    return note("collect"), g_.collect_dirty(b);
  }
  bool reports_free_pages() const override { return true; }
  Status start_free_page_reporting() override {
    return note("start_reporting"), g_.start_free_page_reporting();
  }
  uint64_t take_free_pages(std::vector<Range>& out) override {
    return note("take"), g_.take_free_pages(out);
  }
  void stop_free_page_reporting() override {
    note("stop_reporting"), g_.stop_free_page_reporting();
  }
  std::vector<uint8_t> save_state() override { return g_.save_state(); }
  Status load_state(const std::vector<uint8_t>& s) override { return g_.load_state(s); }
  std::string describe() const override { return g_.describe(); }

  std::vector<std::string> calls() {
    std::lock_guard lk(mu_);
    return calls_;
  }

 private:
  void note(const char* what) {
    std::lock_guard lk(mu_);
    calls_.push_back(what);
  }
  ThreadGuest& g_;
  std::mutex mu_;
  std::vector<std::string> calls_;
};

TEST(FreePageHintOrder, DirtyLogFirstThenHintsBeforeEachDirtyLog) {
  WorkloadSpec spec = hint_spec(kSmallPage);
  spec.ram_bytes = 64ull << 20;
  auto guest = ThreadGuest::create(spec);
  ASSERT_TRUE(guest.is_ok()) << guest.status().to_string();
  ASSERT_TRUE((*guest)->prefill().is_ok());
  ASSERT_TRUE((*guest)->start().is_ok());
  RecordingGuest rec(**guest);
  MigrationParameters params;
  params.workers = 1;
  IncomingMigration incoming(make_thread_guest_factory(), params);
  auto uri = incoming.start(listen_uri("loopback"));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  MigrationCapabilities caps;
  caps.free_page_hint = true;
  OutgoingMigration outgoing(rec, caps, params);
  ASSERT_TRUE(outgoing.start(*uri).is_ok());
  ASSERT_EQ(outgoing.wait(std::chrono::minutes(2)), MigrationStatus::kCompleted)
      << outgoing.info().error;
  ASSERT_EQ(incoming.wait(std::chrono::minutes(1)), MigrationStatus::kCompleted);

  const std::vector<std::string> calls = rec.calls();
  auto first = [&](const std::string& what) {
    return std::find(calls.begin(), calls.end(), what) - calls.begin();
  };
  std::string all;
  for (const auto& c : calls) all += c + " ";
  ASSERT_LT(first("start_dirty_log"), first("start_reporting")) << all;
  ASSERT_LT(first("start_reporting"), first("take")) << all;
  ASSERT_LT(first("take"), static_cast<long>(calls.size())) << all;
  size_t takes = 0;
  for (size_t i = 0; i < calls.size(); ++i) {
    if (calls[i] != "take") continue;
    ++takes;
    ASSERT_LT(i + 1, calls.size()) << all;
    EXPECT_EQ(calls[i + 1], "collect") << "hints are applied before the dirty log: " << all;
  }
  EXPECT_GE(takes, 2u) << "hints before the first pass, and at each sync: " << all;
  ASSERT_LT(first("stop_reporting"), first("stop_dirty_log")) << all;
  EXPECT_GT(outgoing.info().stats.free_pages_skipped, 0u);
  incoming.guest()->pause();
}

}  // namespace
}  // namespace tern
