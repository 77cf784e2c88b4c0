// Two real ternd processes, the source hosting a KVM guest (--guest kvm,...): a postcopy-preempt
// migration over tcp completes, the destination ternd made a KVM guest from the incoming layout,
// and both the guest's own checks and the destination's page check report 0 mismatches.
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
#include "tests/kvm/kvm_skip.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

constexpr const char* kGuest = "kvm,vcpus=2,ram=128M,page=4K,wss=16M,rate=2000,read=20%,seed=3";

TEST(KvmTernd, PostcopyPreemptOverTcpWithAKvmGuest) {
  TERN_SKIP_WITHOUT_KVM();
  if (std::getenv("TERND") == nullptr) GTEST_SKIP() << "TERND (path to ternd) is not set";
  char tmpl[] = "/tmp/tern-kvm-ternd-XXXXXX";
  ASSERT_NE(mkdtemp(tmpl), nullptr);
  const std::string dir = tmpl;
  {
    Ternd dst(dir, "dst", {"--incoming", "tcp:127.0.0.1:0"});
    Ternd src(dir, "src", {"--guest", kGuest});
    auto d = dst.connect();
    auto s = src.connect();
    ASSERT_TRUE(d && s);
    auto g = s->execute(ext::kQueryGuest);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    EXPECT_EQ(std::string((*g)["description"]).rfind("kvm:", 0), 0u) << g->dump(2);
    std::string uri = (*d->execute(ext::kQueryIncoming))["uri"];
    ASSERT_TRUE(arm_postcopy(*s, /*preempt=*/true, 16 << 20));
    ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
    ASSERT_TRUE(start_postcopy_when_active(*s, 400, 10ms));
    Json sq = wait_done(*s, 120s);
    ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
    Json dq = wait_done(*d, 30s);
    ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
    EXPECT_GT(sq["ram"]["postcopy-requests"].get<uint64_t>(), 0u) << "no KVM fault reached tern";
    auto dg = d->execute(ext::kQueryGuest);
    ASSERT_TRUE(dg.is_ok());
    EXPECT_EQ(std::string((*dg)["description"]).rfind("kvm:", 0), 0u) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
    EXPECT_GT((*dg)["verification"]["touched-checked"].get<uint64_t>(), 0u) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"]["touched-mismatches"], 0) << dg->dump(2);
  }
  std::system(("rm -rf " + dir).c_str());
}

}  // namespace
}  // namespace tern::control
