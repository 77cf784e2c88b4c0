// End to end over memif: two real ternd processes (destination --incoming dpdk:net_memif0,...,
// source hosting a 64 MiB thread guest) migrate in precopy, postcopy and postcopy-preempt with
// 4K and 2M pages, on a clean link and with loss, reordering and duplication injected in both
// receive paths (TERN_DPDK_FAULTS, seeded); every page must verify on the destination.
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
#include "dpdk/dpdk_transport.h"
#include "tests/integration/migration_helpers.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

struct Case {
  const char* mode;  // precopy, postcopy, preempt
  const char* page;  // 4K, 2M
  const char* faults;  // TERN_DPDK_FAULTS, "" for a clean link
  const char* name;
};

class TerndOverMemif : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    if (std::getenv("TERND") == nullptr) GTEST_SKIP() << "TERND (path to ternd) is not set";
    if (Status s = dpdk_can_start(); !s.is_ok())
      GTEST_SKIP() << "DPDK cannot start here: " << s.to_string();
    char tmpl[] = "/tmp/tern-dpdk-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_P(TerndOverMemif, EveryPageVerifies) {
  const Case& c = GetParam();
  const bool huge = std::string(c.page) == "2M";
  if (std::string why = testing_support::reserve_for(64 << 20, huge ? kHugePageBytes : 4096);
      !why.empty())
    GTEST_SKIP() << "2M pages need hugetlb: " << why;
  std::vector<std::string> env;
  if (*c.faults) env.push_back(std::string("TERN_DPDK_FAULTS=") + c.faults);
  static int n = 0;
  const std::string listen = "dpdk:net_memif0,socket=/run/tern-dpdk-test-" +
                             std::to_string(::getpid()) + "-" + std::to_string(n++) + ".sock";
  Ternd dst(dir_, "dst", {"--workers", "1", "--incoming", listen}, env);
  Ternd src(dir_, "src",
            {"--workers", "1", "--guest", std::string("threads,vcpus=2,ram=64M,page=") + c.page +
                            ",wss=25%,rate=20000,pattern=random,seed=1"},
            env);
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  auto inc = d->execute(ext::kQueryIncoming);
  ASSERT_TRUE(inc.is_ok()) << inc.status().to_string();
  std::string uri = (*inc)["uri"];
  ASSERT_EQ(uri.rfind("dpdk:net_memif0,role=client,", 0), 0u) << uri;

  const std::string mode = c.mode;
  if (mode != "precopy") {
    Json caps = Json::array({{{"capability", "postcopy-ram"}, {"state", true}}});
    if (mode == "preempt")
      caps.push_back({{"capability", "postcopy-preempt"}, {"state", true}});
    ASSERT_TRUE(s->execute("migrate-set-capabilities", {{"capabilities", caps}}).is_ok());
    // A bandwidth cap keeps precopy running long enough to switch.
    ASSERT_TRUE(s->execute("migrate-set-parameters", {{"max-bandwidth", 32 << 20}}).is_ok());
  }
  auto m = s->execute("migrate", {{"uri", uri}});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  if (mode != "precopy") {
    bool switched = false;
    for (int i = 0; i < 200 && !switched; ++i) {
      auto q = s->execute("query-migrate");
      ASSERT_TRUE(q.is_ok());
      if ((*q)["status"] == "active") {
        auto r = s->execute("migrate-start-postcopy");
        ASSERT_TRUE(r.is_ok()) << r.status().to_string();
        switched = true;
      }
      std::this_thread::sleep_for(50ms);
    }
    ASSERT_TRUE(switched);
  }
  Json sq = wait_done(*s, 180s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kTransport], "dpdk");
  if (mode != "precopy") {
    EXPECT_GT(sq["ram"]["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
  }
  auto dg = d->execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
  ASSERT_TRUE(dg->contains("verification")) << dg->dump(2);
  EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u);
  EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
  EXPECT_EQ((*dg)["verification"].value("touched-mismatches", 0), 0) << dg->dump(2);
}

INSTANTIATE_TEST_SUITE_P(
    Memif, TerndOverMemif,
    ::testing::Values(
        Case{"precopy", "4K", "", "precopy_4K"}, Case{"precopy", "2M", "", "precopy_2M"},
        Case{"postcopy", "4K", "", "postcopy_4K"}, Case{"postcopy", "2M", "", "postcopy_2M"},
        Case{"preempt", "4K", "", "preempt_4K"}, Case{"preempt", "2M", "", "preempt_2M"},
        Case{"precopy", "4K", "loss=0.01,reorder=0.01,dup=0.01,seed=11", "precopy_4K_lossy1"},
        Case{"precopy", "4K", "loss=0.05,reorder=0.05,dup=0.05,corrupt=0.01,seed=12", "precopy_4K_lossy5"},
        Case{"precopy", "2M", "loss=0.05,reorder=0.05,dup=0.05,corrupt=0.01,seed=13", "precopy_2M_lossy5"},
        Case{"preempt", "4K", "loss=0.01,reorder=0.01,dup=0.01,seed=14", "preempt_4K_lossy1"},
        Case{"preempt", "4K", "loss=0.05,reorder=0.05,dup=0.05,corrupt=0.01,seed=15", "preempt_4K_lossy5"},
        Case{"preempt", "2M", "loss=0.01,reorder=0.01,dup=0.01,seed=16", "preempt_2M_lossy1"}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace tern::control
