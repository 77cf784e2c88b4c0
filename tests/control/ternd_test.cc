// Integration: two real ternd processes (destination --incoming tcp:127.0.0.1:0, source hosting
// a 64 MiB thread guest) driven over their QMP sockets; the migration must complete with every
// page verified on the destination.
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "tests/control/ternd_process.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

constexpr const char* kGuest =
    "threads,vcpus=2,ram=64M,page=4K,wss=25%,rate=20000,pattern=random,seed=1";

using TerndTest = TerndDirTest;

TEST_F(TerndTest, PrecopyOverTcpCompletesWithEveryPageVerified) {
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--guest", kGuest});
  ASSERT_TRUE(dst.started() && src.started());
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  EXPECT_EQ(d->greeting()["QMP"]["capabilities"], Json::array());
  auto role = d->execute(ext::kQueryGuest);
  ASSERT_TRUE(role.is_ok()) << role.status().to_string();
  EXPECT_EQ((*role)["role"], "destination");

  auto inc = d->execute(ext::kQueryIncoming);
  ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
  std::string uri = (*inc)["uri"];
  ASSERT_EQ(uri.rfind("tcp:127.0.0.1:", 0), 0u) << uri;
  EXPECT_NE(uri, "tcp:127.0.0.1:0") << "port 0 must be resolved";

  auto g = s->execute(ext::kQueryGuest);
  ASSERT_TRUE(g.is_ok());
  EXPECT_TRUE((*g)["running"].get<bool>());

  auto m = s->execute("migrate", {{"uri", uri}});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  Json sq = wait_done(*s, 120s);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kTransport], "tcp");
  EXPECT_EQ(sq["ram"]["total"], 64 << 20);
  EXPECT_GT(sq["ram"]["transferred"].get<uint64_t>(), 0u);

  auto dg = d->execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
  ASSERT_TRUE(dg->contains("verification")) << dg->dump(2);
  EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u);
  EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
  EXPECT_TRUE((*dg)["running"].get<bool>()) << "the guest runs on the destination now";

  // The guest has left: a second migrate is refused with a reason.
  auto again = s->execute("migrate", {{"uri", uri}});
  ASSERT_FALSE(again.is_ok());
  EXPECT_NE(again.status().message().find("already migrated"), std::string::npos);
}

TEST_F(TerndTest, PostcopyPreemptOverTcpCompletes) {
  Ternd dst(dir_, "dst", {"--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--guest", kGuest});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  std::string uri = (*d->execute(ext::kQueryIncoming))["uri"];
  ASSERT_TRUE(arm_postcopy(*s, /*preempt=*/true, 32 << 20));
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  ASSERT_TRUE(start_postcopy_when_active(*s, 100, 50ms));
  Json sq = wait_done(*s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  auto dg = d->execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok());
  EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
  EXPECT_EQ((*dg)["verification"]["touched-mismatches"], 0) << dg->dump(2);
  EXPECT_TRUE(dq.contains(ext::kPostcopyFaultLatency));
  EXPECT_GT(sq["ram"]["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
}

TEST_F(TerndTest, FailedMigrationLeavesTheSourceRunningAndReportsWhy) {
  Ternd src(dir_, "src", {"--guest", kGuest});
  auto s = src.connect();
  ASSERT_TRUE(s);
  // Nobody listens on this port (it was just closed by a destination we never start).
  ASSERT_TRUE(s->execute("migrate-set-parameters", {{"multifd-channels", 1}}).is_ok());
  auto m = s->execute("migrate", {{"uri", "tcp:127.0.0.1:1"}});
  if (m.is_ok()) {
    Json q = wait_done(*s, 60s);
    EXPECT_EQ(q["status"], "failed") << q.dump(2);
    EXPECT_FALSE(q.value("error-desc", "").empty());
  } else {
    EXPECT_FALSE(m.status().message().empty());
  }
  auto g = s->execute(ext::kQueryGuest, {{"verify", true}});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  EXPECT_TRUE((*g)["running"].get<bool>());
  EXPECT_EQ((*g)["verification"]["mismatches"], 0) << g->dump(2);
  auto bad = s->execute("migrate", {{"uri", "carrier-pigeon:somewhere"}});
  ASSERT_FALSE(bad.is_ok());
  EXPECT_NE(bad.status().message().find("carrier-pigeon"), std::string::npos)
      << bad.status().message();
}

}  // namespace
}  // namespace tern::control
