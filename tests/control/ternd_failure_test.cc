// Integration: two real ternd processes over tcp on 127.0.0.1, and a peer that dies. kill -9 of
// the source during postcopy (with and without preempt): the destination keeps answering QMP
// in postcopy-paused with its guest running, migrate_cancel gives the recovery up with a clear
// failed state (its guest cannot continue without the source's pages) and SIGTERM ends it.
// Postcopy recovery over QMP: migrate-pause, migrate-recover, migrate resume=true completes.
// A destination whose migration was cancelled takes the next one.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "tests/control/ternd_process.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

constexpr const char* kGuest = "threads,vcpus=2,ram=32M,page=4K,wss=100%,rate=20000,seed=3";

class TerndFailure : public TerndDirFixture<::testing::TestWithParam<bool>> {};

std::string status_of(QmpClient& c) {
  auto q = c.execute("query-migrate", Json::object(), 5s);
  if (!q) return "no answer: " + q.status().to_string();
  return (*q)["status"];
}

// Migrates from source `s` to destination `d` with postcopy armed (precopy held to `bandwidth`
// bytes/s), switches to postcopy once active, and returns when `watch` says postcopy-active.
void migrate_into_postcopy(QmpClient& d, QmpClient& s, QmpClient& watch, bool preempt,
                           uint64_t bandwidth) {
  auto inc = d.execute(ext::kQueryIncoming);
  ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
  ASSERT_TRUE(arm_postcopy(s, preempt, bandwidth));
  auto m = s.execute("migrate", {{"uri", (*inc)["uri"]}});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  ASSERT_TRUE(start_postcopy_when_active(s, 200, 20ms));
  ASSERT_EQ(wait_status(watch, "postcopy-active", 60s)["status"], "postcopy-active");
}

TEST_P(TerndFailure, SourceKilledInPostcopyDestinationAnswersFailsClearlyAndEndsOnSigterm) {
  const bool preempt = GetParam();
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--guest", kGuest});
  ASSERT_TRUE(dst.started() && src.started());
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_NO_FATAL_FAILURE(migrate_into_postcopy(*d, *s, *s, preempt, 20 << 20));
  src.signal(SIGKILL);
  ASSERT_TRUE(src.wait_exit(5s));

  // The link broke: postcopy-paused, the guest runs on, QMP answers.
  Json p = wait_status(*d, "postcopy-paused", 20s);
  ASSERT_EQ(p["status"], "postcopy-paused") << p.dump(2);
  EXPECT_TRUE(p.contains("error-desc")) << p.dump(2);
  auto running = d->execute(ext::kQueryGuest, Json::object(), 5s);
  ASSERT_TRUE(running.is_ok()) << running.status().to_string();
  EXPECT_TRUE((*running)["running"].get<bool>()) << running->dump(2);
  // No source will come back: migrate_cancel gives up the recovery.
  ASSERT_TRUE(d->execute("migrate_cancel").is_ok());
  Json q = wait_done(*d, 20s);
  ASSERT_EQ(q["status"], "failed") << q.dump(2);
  const std::string error = q["error-desc"];
  EXPECT_NE(error.find("cannot continue without the source's pages"), std::string::npos) << error;
  // QMP keeps answering in the failed state, guest queries included.
  EXPECT_EQ(status_of(*d), "failed");
  auto g = d->execute(ext::kQueryGuest, Json::object(), 5s);
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_FALSE((*g)["running"].get<bool>()) << g->dump(2);

  dst.signal(SIGTERM);
  EXPECT_TRUE(dst.wait_exit(10s)) << "SIGTERM did not end the destination";
}

INSTANTIATE_TEST_SUITE_P(Preempt, TerndFailure, ::testing::Bool(),
                         [](const auto& info) { return info.param ? "preempt" : "plain"; });

TEST_F(TerndFailure, SigtermEndsADestinationInPostcopyAndTellsTheSource) {
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--guest", kGuest});
  ASSERT_TRUE(dst.started() && src.started());
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_NO_FATAL_FAILURE(migrate_into_postcopy(*d, *s, *d, false, 4 << 20));
  dst.signal(SIGTERM);
  EXPECT_TRUE(dst.wait_exit(10s)) << "SIGTERM did not end the destination in postcopy";
  Json q = wait_done(*s, 20s);
  ASSERT_EQ(q["status"], "failed") << q.dump(2);
  EXPECT_NE(std::string(q["error-desc"]).find("shutting down"), std::string::npos) << q.dump(2);
}

TEST_F(TerndFailure, CancelThenMigrateAgainToTheSameDestinationCompletes) {
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--guest", kGuest});
  ASSERT_TRUE(dst.started() && src.started());
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  auto inc = d->execute(ext::kQueryIncoming);
  ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
  auto p = s->execute("migrate-set-parameters", {{"max-bandwidth", 4 << 20}});
  ASSERT_TRUE(p.is_ok()) << p.status().to_string();
  ASSERT_TRUE(s->execute("migrate", {{"uri", (*inc)["uri"]}}).is_ok());
  ASSERT_EQ(wait_status(*s, "active", 60s)["status"], "active");
  ASSERT_TRUE(s->execute("migrate_cancel").is_ok());
  EXPECT_EQ(wait_done(*s, 20s)["status"], "cancelled");
  EXPECT_EQ(wait_done(*d, 20s)["status"], "cancelled");

  ASSERT_TRUE(s->execute("migrate-set-parameters", {{"max-bandwidth", 0}}).is_ok());
  auto again = s->execute("migrate", {{"uri", (*inc)["uri"]}});
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  Json sq = wait_done(*s, 60s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  auto dg = d->execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
  EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
  EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u) << dg->dump(2);
}

}  // namespace
}  // namespace tern::control

namespace tern::control {
namespace {

// A destination ternd and a source ternd hosting kGuest in `dir`, each with a QMP client.
struct PostcopyPair {
  explicit PostcopyPair(const std::string& dir)
      : dst(dir, "dst", {"--incoming", "tcp:127.0.0.1:0"}), src(dir, "src", {"--guest", kGuest}) {
    if (dst.started() && src.started()) d = dst.connect(), s = src.connect();
  }
  bool connected() const { return d && s; }
  Ternd dst, src;
  std::unique_ptr<QmpClient> d, s;
};

// Both sides postcopy-paused: migrate-recover on `d`, migrate resume=true on `s`; both complete
// after one recovery and the destination's check of every page finds no mismatch.
void recover_and_complete(QmpClient& d, QmpClient& s) {
  auto rec = d.execute("migrate-recover", {{"uri", "tcp:127.0.0.1:0"}});
  ASSERT_TRUE(rec.is_ok()) << rec.status().to_string();
  auto inc = d.execute(ext::kQueryIncoming);
  ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
  auto res = s.execute("migrate", {{"uri", (*inc)["uri"]}, {"resume", true}});
  ASSERT_TRUE(res.is_ok()) << res.status().to_string();
  Json sq = wait_done(s, 60s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kPostcopyRecovery]["recoveries"], 1) << sq.dump(2);
  auto dg = d.execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
  EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
  EXPECT_EQ((*dg)["verification"]["touched-mismatches"], 0) << dg->dump(2);
}

// Postcopy recovery through QMP between two ternd processes: migrate-pause on the source,
// migrate-recover on the destination, migrate resume=true; the destination checks every page.
TEST_F(TerndFailure, PauseRecoverResumeOverQmpCompletes) {
  PostcopyPair p(dir_);
  ASSERT_TRUE(p.connected());
  auto &d = p.d, &s = p.s;
  // Refused outside postcopy-paused, with a clear error.
  auto early = d->execute("migrate-recover", {{"uri", "tcp:127.0.0.1:0"}});
  ASSERT_FALSE(early.is_ok());
  EXPECT_NE(early.status().message().find("postcopy-paused"), std::string::npos)
      << early.status().message();
  ASSERT_NO_FATAL_FAILURE(migrate_into_postcopy(*d, *s, *s, true, 4 << 20));
  auto paused = s->execute("migrate-pause");
  ASSERT_TRUE(paused.is_ok()) << paused.status().to_string();
  EXPECT_EQ(wait_status(*s, "postcopy-paused", 20s)["status"], "postcopy-paused");
  EXPECT_EQ(wait_status(*d, "postcopy-paused", 20s)["status"], "postcopy-paused");
  auto again = d->execute("migrate-pause");
  EXPECT_FALSE(again.is_ok());
  ASSERT_NO_FATAL_FAILURE(recover_and_complete(*d, *s));
}

// A destination silent past the source's __io.github.tern_postcopy-peer-timeout (SIGSTOP): the source pauses
// and closes its link; once the destination runs again it finds the link closed and pauses too;
// the recovery completes with every page intact.
TEST_F(TerndFailure, SilentDestinationPausesBothSidesAndRecovers) {
  PostcopyPair p(dir_);
  ASSERT_TRUE(p.connected());
  Ternd& dst = p.dst;
  auto &d = p.d, &s = p.s;
  ASSERT_TRUE(s->execute("migrate-set-parameters", {{ext::kPostcopyPeerTimeout, 1000}}).is_ok());
  ASSERT_NO_FATAL_FAILURE(migrate_into_postcopy(*d, *s, *s, false, 4 << 20));
  dst.signal(SIGSTOP);
  Json sp = wait_status(*s, "postcopy-paused", 20s);
  dst.signal(SIGCONT);
  ASSERT_EQ(sp["status"], "postcopy-paused") << sp.dump(2);
  EXPECT_NE(std::string(sp["error-desc"]).find("said nothing"), std::string::npos) << sp.dump(2);
  ASSERT_EQ(wait_status(*d, "postcopy-paused", 20s)["status"], "postcopy-paused");
  ASSERT_NO_FATAL_FAILURE(recover_and_complete(*d, *s));
}

// SIGTERM ends a ternd whose postcopy is paused, on either side.
TEST_F(TerndFailure, SigtermEndsPausedSides) {
  PostcopyPair p(dir_);
  ASSERT_TRUE(p.connected());
  Ternd &dst = p.dst, &src = p.src;
  auto &d = p.d, &s = p.s;
  ASSERT_NO_FATAL_FAILURE(migrate_into_postcopy(*d, *s, *s, false, 4 << 20));
  // The source switches first; the destination may still be "active" for a moment.
  EXPECT_EQ(wait_status(*d, "postcopy-active", 20s)["status"], "postcopy-active");
  auto paused = d->execute("migrate-pause");
  ASSERT_TRUE(paused.is_ok()) << paused.status().to_string();
  EXPECT_EQ(wait_status(*s, "postcopy-paused", 20s)["status"], "postcopy-paused");
  EXPECT_EQ(wait_status(*d, "postcopy-paused", 20s)["status"], "postcopy-paused");
  src.signal(SIGTERM);
  EXPECT_TRUE(src.wait_exit(10s)) << "SIGTERM did not end the paused source";
  dst.signal(SIGTERM);
  EXPECT_TRUE(dst.wait_exit(10s)) << "SIGTERM did not end the paused destination";
}

}  // namespace
}  // namespace tern::control
