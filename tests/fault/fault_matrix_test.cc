// The fault-injection matrix (issue 16): real ternd processes migrating a self-checking guest
// while one side is killed (SIGKILL), stopped past the handshake timeouts (SIGSTOP, SIGCONT) or
// cut off (the link down, then up), in setup, precopy, switchover or postcopy, over tcp, dpdk
// and rdma (the rdma row: where an RDMA device is, else skipped; meson runs it as rdma_fault in
// the soft-RoCE VM). Which cases run: TERN_FAULT_CASES (tests/fault/fault_matrix.h; the CI set
// by default). Each case's outcome is appended to TERN_FAULT_RECORD for scripts/soak.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>

#include "tests/control/ternd_process.h"
#include "tests/fault/fault_matrix.h"
#include "tests/fault/fault_qmp.h"
#include "tests/fault/fault_record.h"
#include "tests/fault/fault_rig.h"
#include "tests/fault/fault_runner.h"

namespace tern::fault {
namespace {

// Keeps the first failed assertion's message for the record.
class FirstFailure : public ::testing::EmptyTestEventListener {
 public:
  void OnTestStart(const ::testing::TestInfo&) override { message_.clear(); }
  void OnTestPartResult(const ::testing::TestPartResult& r) override {
    if (r.failed() && message_.empty()) message_ = r.message();
  }
  static FirstFailure* instance;
  std::string message_;
};
FirstFailure* FirstFailure::instance = nullptr;

// A case with ternd's path (TERND) and a scratch directory of its own.
template <typename Param>
using WithScratchDir = control::TerndDirFixture<::testing::TestWithParam<Param>>;

class FaultMatrix : public WithScratchDir<FaultCase> {};

TEST_P(FaultMatrix, SurvivesTheFault) {
  const FaultCase& c = GetParam();
  // Namespace and interface names: short (IFNAMSIZ) and unique per process and case.
  static int serial = 0;
  const std::string tag = "f" + std::to_string(::getpid() % 100000) + "x" + std::to_string(serial++);
  FaultRig rig(c, dir_, tag);
  if (!rig.skip_reason().empty()) GTEST_SKIP() << rig.skip_reason();
  const auto t0 = std::chrono::steady_clock::now();
  CaseRunner runner(c, rig, FaultTimes::from_env());
  runner.run();
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  record_case(c.name(), runner.outcome(), seconds,
              HasFailure() ? FirstFailure::instance->message_ : std::string());
  if (!runner.skip_reason().empty()) GTEST_SKIP() << runner.skip_reason();
  std::printf("%s: %s%s%s, %llu pages checked, %llu lost, %.1f s\n", c.name().c_str(),
              runner.outcome().result.c_str(), runner.outcome().cause.empty() ? "" : ": ",
              runner.outcome().cause.c_str(),
              static_cast<unsigned long long>(runner.outcome().pages_checked),
              static_cast<unsigned long long>(runner.outcome().pages_lost), seconds);
}

// No fault: two af_packet destinations armed on one veth end (each a process: every packet
// socket there sees every frame) and a source migrating to the second. Each endpoint must take
// only frames addressed to it (docs/dpdk.md, *Endpoint ids*): before that, the first
// destination took in part of the session and the migration "completed" with 4108 of 8184
// pages stale. Uses the rig of a dpdk cut case for its veth pair; not part of the matrix.
// Insecure too: without the channel handshake the other destination does not drop the
// connection at once.
class TwoDestinations : public WithScratchDir<bool> {};

TEST_P(TwoDestinations, OnOneAfPacketInterfaceKeepTheirSessionsApart) {
  static int serial = 0;
  const std::vector<std::string> extra =
      GetParam() ? std::vector<std::string>{"--insecure"} : std::vector<std::string>{};
  const std::string tag = "f" + std::to_string(::getpid() % 100000) + "y" + std::to_string(serial++);
  FaultRig rig({Transport::kDpdk, Phase::kSetup, Side::kDestination, Fault::kCut}, dir_, tag);
  if (!rig.skip_reason().empty()) GTEST_SKIP() << rig.skip_reason();
  auto other = rig.start_destination("other", extra);
  auto dst = rig.start_destination("dst", extra);
  auto src = rig.start_source("src", extra);
  ASSERT_TRUE(other->started() && dst->started() && src->started());
  auto o = other->connect();
  auto d = dst->connect();
  auto s = src->connect();
  ASSERT_TRUE(o && d && s) << "connecting to ternd's QMP";
  const PageCheck pc = retry_migration(
      *s, *d, [&](const std::string& u) { return rig.source_uri(u); }, "two destinations");
  EXPECT_GT(pc.checked, 0u);
  EXPECT_EQ(pc.bad, 0u);
  // The other destination never saw a migration of its own.
  const Json q = query_migrate(*o);
  EXPECT_FALSE(status_of(q) == "completed") << q.dump();
  for (auto* t : {other.get(), dst.get(), src.get()}) t->signal(SIGTERM);
  for (auto* t : {other.get(), dst.get(), src.get()}) EXPECT_TRUE(t->wait_exit(std::chrono::seconds(10)));
}

INSTANTIATE_TEST_SUITE_P(Auth, TwoDestinations, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "insecure" : "key"; });

// The selection: "ci" and "all" keep their tcp and dpdk cases whether or not an RDMA device is
// here, and take the rdma row's CI set / whole row only with one; a prefix takes it anywhere.
TEST(FaultSelection, TheRdmaRowJoinsCiAndAllOnlyWithADevice) {
  auto count = [](const std::vector<FaultCase>& cases, Transport t) {
    return std::count_if(cases.begin(), cases.end(),
                         [t](const FaultCase& c) { return c.transport == t; });
  };
  for (const char* spec : {"ci", "all"}) {
    const auto without = select_fault_cases(spec, nullptr, false);
    const auto with = select_fault_cases(spec, nullptr, true);
    EXPECT_EQ(count(without, Transport::kRdma), 0) << spec;
    EXPECT_EQ(with.size() - count(with, Transport::kRdma), without.size()) << spec;
    for (size_t i = 0; i < without.size(); ++i) EXPECT_EQ(with[i].name(), without[i].name());
  }
  EXPECT_EQ(select_fault_cases("ci", nullptr, false).size(), 27u);
  EXPECT_EQ(select_fault_cases("all", nullptr, false).size(), 48u);
  std::vector<std::string> rdma_ci;
  for (const FaultCase& c : select_fault_cases("ci", nullptr, true))
    if (c.transport == Transport::kRdma) rdma_ci.push_back(c.name());
  EXPECT_EQ(rdma_ci, (std::vector<std::string>{"rdma_precopy_destination_kill",
                                               "rdma_postcopy_source_kill",
                                               "rdma_postcopy_destination_cut"}));
  EXPECT_EQ(count(select_fault_cases("all", nullptr, true), Transport::kRdma), 24);
  EXPECT_EQ(select_fault_cases("rdma", nullptr, false).size(), 24u);
}

std::vector<FaultCase> selected() {
  std::string unknown;
  std::vector<FaultCase> cases =
      select_fault_cases(std::getenv("TERN_FAULT_CASES"), &unknown, rdma_device_here());
  if (!unknown.empty())
    std::fprintf(stderr, "TERN_FAULT_CASES: no case matches '%s'\n", unknown.c_str());
  return cases;
}

INSTANTIATE_TEST_SUITE_P(Cases, FaultMatrix, ::testing::ValuesIn(selected()),
                         [](const auto& info) { return info.param.name(); });
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(FaultMatrix);

// Registered before main runs the tests: gtest owns the listener.
const bool kListening = [] {
  FirstFailure::instance = new FirstFailure;
  ::testing::UnitTest::GetInstance()->listeners().Append(FirstFailure::instance);
  return true;
}();

}  // namespace
}  // namespace tern::fault
