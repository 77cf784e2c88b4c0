// Postcopy recovery over memif: two real ternd processes (destination --incoming
// dpdk:net_memif0,..., source hosting a 64 MiB thread guest) in postcopy-preempt; migrate-pause
// on the source breaks the link, both sides go to postcopy-paused, migrate-recover on a new
// memif socket and migrate resume=true finish it; every page must verify on the destination.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <thread>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "dpdk/dpdk_transport.h"
#include "tests/control/ternd_process.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

std::string memif_uri(const char* what) {
  return "dpdk:net_memif0,socket=/run/tern-dpdk-recover-" + std::to_string(::getpid()) + "-" +
         what + ".sock";
}

TEST(TerndOverMemifRecovery, PauseRecoverResumeCompletes) {
  if (std::getenv("TERND") == nullptr) GTEST_SKIP() << "TERND (path to ternd) is not set";
  if (Status s = dpdk_can_start(); !s.is_ok())
    GTEST_SKIP() << "DPDK cannot start here: " << s.to_string();
  char tmpl[] = "/tmp/tern-dpdk-rec-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    Ternd dst(dir, "dst", {"--workers", "1", "--incoming", memif_uri("first")});
    Ternd src(dir, "src",
              {"--workers", "1", "--guest",
               "threads,vcpus=2,ram=64M,page=4K,wss=25%,rate=20000,pattern=random,seed=1"});
    auto d = dst.connect();
    auto s = src.connect();
    ASSERT_TRUE(d && s);
    auto inc = d->execute(ext::kQueryIncoming);
    ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
    Json caps = Json::array({{{"capability", "postcopy-ram"}, {"state", true}},
                             {{"capability", "postcopy-preempt"}, {"state", true}}});
    ASSERT_TRUE(s->execute("migrate-set-capabilities", {{"capabilities", caps}}).is_ok());
    ASSERT_TRUE(s->execute("migrate-set-parameters",
                           {{"max-bandwidth", 4 << 20}, {ext::kPostcopyPeerTimeout, 3000}})
                    .is_ok());
    ASSERT_TRUE(s->execute("migrate", {{"uri", (*inc)["uri"]}}).is_ok());
    ASSERT_EQ(wait_status(*s, "active", 30s)["status"], "active");
    ASSERT_TRUE(s->execute("migrate-start-postcopy").is_ok());
    ASSERT_EQ(wait_status(*d, "postcopy-active", 30s)["status"], "postcopy-active");
    auto p = s->execute("migrate-pause");
    ASSERT_TRUE(p.is_ok()) << p.status().to_string();
    Json sp = wait_status(*s, "postcopy-paused", 30s);
    ASSERT_EQ(sp["status"], "postcopy-paused") << sp.dump(2);
    Json dp = wait_status(*d, "postcopy-paused", 30s);
    ASSERT_EQ(dp["status"], "postcopy-paused") << dp.dump(2);
    auto rec = d->execute("migrate-recover", {{"uri", memif_uri("again")}});
    ASSERT_TRUE(rec.is_ok()) << rec.status().to_string();
    auto again = d->execute(ext::kQueryIncoming);
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    auto res = s->execute("migrate", {{"uri", (*again)["uri"]}, {"resume", true}});
    ASSERT_TRUE(res.is_ok()) << res.status().to_string();
    Json sq = wait_done(*s, 180s);
    ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
    Json dq = wait_done(*d, 30s);
    ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
    EXPECT_EQ(sq[ext::kTransport], "dpdk");
    EXPECT_EQ(sq[ext::kPostcopyRecovery]["recoveries"], 1) << sq.dump(2);
    auto dg = d->execute(ext::kQueryGuest);
    ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
    EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u);
    EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"].value("touched-mismatches", 0), 0) << dg->dump(2);
  }
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace tern::control
