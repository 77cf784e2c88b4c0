// Integration: the thread guest in VMM processes of its own (tern-thread-vmm), attached through
// libtern-vmm to two real ternd processes (--attach-socket), migrated over tcp: precopy,
// postcopy and postcopy-preempt, 4K and 2M pages, every page checked by the destination VMM's
// guest (0 mismatches). Failures: the source VMM killed mid-migration (the migration fails
// clearly, ternd stays up); the source ternd killed mid-precopy (the VMM's guest keeps running,
// it attaches to a new ternd and the retried migration completes).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <tuple>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "dataplane/ram_block.h"
#include "tests/control/ternd_process.h"
#include "tests/control/vmm_process.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

class AttachMigrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (std::getenv("TERND") == nullptr || std::getenv("TERN_THREAD_VMM") == nullptr)
      GTEST_SKIP() << "TERND and TERN_THREAD_VMM (paths to the binaries) are not set";
    char tmpl[] = "/tmp/tern-attach-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string att(const std::string& name) const { return dir_ + "/" + name + ".att"; }
  static std::string spec(const std::string& page) {
    return "vcpus=2,ram=64M,page=" + page + ",wss=50%,rate=20000,pattern=random,seed=3";
  }
  // The destination's verification after a completed migration, checked at 0 mismatches.
  static void expect_verified(QmpClient& d) {
    auto dg = d.execute(ext::kQueryGuest);
    ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
    ASSERT_TRUE(dg->contains("verification")) << dg->dump(2);
    EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"]["touched-mismatches"], 0) << dg->dump(2);
  }
  std::string dir_;
};

// Starts a migration from `s` to `d` held to 4 MB/s (the 64 MiB guest takes seconds, so a kill
// lands mid-precopy) and waits until it is active.
bool start_slow_migration(QmpClient& s, QmpClient& d) {
  std::string uri = (*d.execute(ext::kQueryIncoming))["uri"];
  if (!s.execute("migrate-set-parameters", {{"max-bandwidth", 4 << 20}}).is_ok()) return false;
  if (!s.execute("migrate", {{"uri", uri}}).is_ok()) return false;
  for (int i = 0; i < 100 && (*s.execute("query-migrate"))["status"] != "active"; ++i)
    std::this_thread::sleep_for(20ms);
  return true;
}

enum class Mode { kPrecopy, kPostcopy, kPreempt };

class AttachModes : public AttachMigrationTest,
                    public ::testing::WithParamInterface<std::tuple<Mode, std::string>> {};

TEST_P(AttachModes, OutOfProcessThreadGuestMigratesWithEveryPageVerified) {
  const auto [mode, page] = GetParam();
  if (page == "2M") {
    auto r = reserve_huge_pages(2 * 32 + 8);  // 64 MiB per side
    if (!r) GTEST_SKIP() << "2M pages: " << r.status().message();
  }
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0", "--attach-socket", att("dst")});
  VmmProcess dvmm(dir_, "dvmm", {"--attach", att("dst"), "--incoming", "--spec", spec(page)});
  Ternd src(dir_, "src", {"--attach-socket", att("src")});
  VmmProcess svmm(dir_, "svmm", {"--attach", att("src"), "--spec", spec(page)});
  ASSERT_TRUE(dst.started() && src.started() && dvmm.started() && svmm.started());
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_TRUE(dvmm.wait_output("attached", 20s)) << dvmm.output();
  std::string uri = (*d->execute(ext::kQueryIncoming))["uri"];
  if (mode != Mode::kPrecopy) ASSERT_TRUE(arm_postcopy(*s, mode == Mode::kPreempt, 32 << 20));
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  if (mode != Mode::kPrecopy) ASSERT_TRUE(start_postcopy_when_active(*s, 200, 20ms));
  Json sq = wait_done(*s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  expect_verified(*d);
  if (mode != Mode::kPrecopy)
    EXPECT_GT(sq["ram"]["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
}

std::string mode_name(const ::testing::TestParamInfo<std::tuple<Mode, std::string>>& info) {
  static const char* const kNames[] = {"precopy", "postcopy", "preempt"};
  return std::string(kNames[static_cast<int>(std::get<0>(info.param))]) + "_" +
         std::get<1>(info.param);
}

INSTANTIATE_TEST_SUITE_P(
    Tcp, AttachModes,
    ::testing::Combine(::testing::Values(Mode::kPrecopy, Mode::kPostcopy, Mode::kPreempt),
                       ::testing::Values("4K", "2M")),
    mode_name);

TEST_F(AttachMigrationTest, SourceVmmKilledMidMigrationFailsItClearlyAndTerndStaysUp) {
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0", "--attach-socket", att("dst")});
  VmmProcess dvmm(dir_, "dvmm", {"--attach", att("dst"), "--incoming", "--spec", spec("4K")});
  Ternd src(dir_, "src", {"--attach-socket", att("src")});
  VmmProcess svmm(dir_, "svmm", {"--attach", att("src"), "--spec", spec("4K")});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_TRUE(start_slow_migration(*s, *d));
  svmm.kill(SIGKILL);
  Json sq = wait_done(*s, 60s);
  ASSERT_EQ(sq["status"], "failed") << sq.dump(2);
  const std::string why = sq.value("error-desc", "");
  EXPECT_NE(why.find("VMM"), std::string::npos) << why;
  // ternd is up and says why its guest cannot migrate again.
  auto again = s->execute("query-migrate");
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  EXPECT_EQ((*again)["status"], "failed");
  Json dq = wait_done(*d, 30s);
  EXPECT_NE(dq["status"], "completed") << dq.dump(2);
}

TEST_F(AttachMigrationTest, SourceTerndKilledMidPrecopyLeavesTheGuestRunningAndARetryCompletes) {
  auto first_dst = std::make_unique<Ternd>(
      dir_, "dst1", std::vector<std::string>{"--incoming", "tcp:127.0.0.1:0"});
  auto first_src = std::make_unique<Ternd>(
      dir_, "src1", std::vector<std::string>{"--attach-socket", att("src")});
  VmmProcess svmm(dir_, "svmm", {"--attach", att("src"), "--reattach", "--spec", spec("4K")});
  {
    auto d = first_dst->connect();
    auto s = first_src->connect();
    ASSERT_TRUE(d && s);
    ASSERT_TRUE(start_slow_migration(*s, *d));
  }
  first_src->signal(SIGKILL);
  ASSERT_TRUE(first_src->wait_exit(10s));
  first_src.reset();
  first_dst.reset();
  // libtern-vmm reported the loss and the guest kept running (dirty logging stopped).
  ASSERT_TRUE(svmm.wait_output("detached: ternd", 10s)) << svmm.output();
  EXPECT_NE(svmm.output().find("guest running"), std::string::npos) << svmm.output();
  EXPECT_TRUE(svmm.alive()) << svmm.output();

  // A new ternd on the same attach socket; the VMM attaches again and the retry completes.
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0", "--attach-socket", att("dst")});
  VmmProcess dvmm(dir_, "dvmm", {"--attach", att("dst"), "--incoming", "--spec", spec("4K")});
  Ternd src(dir_, "src", {"--attach-socket", att("src")});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_TRUE(dvmm.wait_output("attached", 20s)) << dvmm.output();
  std::string uri = (*d->execute(ext::kQueryIncoming))["uri"];
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  Json sq = wait_done(*s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  ASSERT_EQ(wait_done(*d, 30s)["status"], "completed");
  expect_verified(*d);
}

// S5 across the attach protocol: the VMM's guest frees 75% of its prefilled RAM and keeps reusing
// and freeing pages; its reports reach the engine through libtern-vmm (FREE_START / FREE_TAKE /
// FREE_STOP), the pages it freed are skipped, and every page it still uses arrives.
TEST_F(AttachMigrationTest, FreePageReportsCrossTheAttachProtocol) {
  const uint64_t ram = 64ull << 20, pages = ram / 4096;
  const std::string free_spec =
      "vcpus=2,ram=64M,page=4K,wss=100%,rate=5000,pattern=random,seed=5,free=75%,reuse=10%";
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0", "--attach-socket", att("dst")});
  VmmProcess dvmm(dir_, "dvmm", {"--attach", att("dst"), "--incoming", "--spec", free_spec});
  Ternd src(dir_, "src", {"--attach-socket", att("src")});
  VmmProcess svmm(dir_, "svmm", {"--attach", att("src"), "--prefill", "--spec", free_spec});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_TRUE(dvmm.wait_output("attached", 20s)) << dvmm.output();
  Json caps = Json::array({{{"capability", ext::kFreePageHint}, {"state", true}}});
  auto set = s->execute("migrate-set-capabilities", {{"capabilities", caps}});
  ASSERT_TRUE(set.is_ok()) << set.status().to_string();
  std::string uri = (*d->execute(ext::kQueryIncoming))["uri"];
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  Json sq = wait_done(*s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  ASSERT_EQ(wait_done(*d, 30s)["status"], "completed");
  expect_verified(*d);
  const Json& r = sq["ram"];
  EXPECT_GE(r[ext::kFreePageHints].get<uint64_t>(), pages * 6 / 10) << r.dump(2);
  EXPECT_GE(r[ext::kFreePagesSkipped].get<uint64_t>(), pages / 2) << r.dump(2);
  EXPECT_EQ(r[ext::kFreePageHintsRefused], 0) << r.dump(2);
  EXPECT_LT(r["normal"].get<uint64_t>() * 4096, ram / 2) << "free pages were sent: " << r.dump(2);
}

}  // namespace
}  // namespace tern::control
