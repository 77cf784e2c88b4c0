// The fault-injection matrix (issue 16): real ternd processes migrating a self-checking guest
// while one side is killed (SIGKILL), stopped past the handshake timeouts (SIGSTOP, SIGCONT) or
// cut off (the link down, then up), in setup, precopy, switchover or postcopy. Which cases run:
// TERN_FAULT_CASES (tests/fault/fault_matrix.h; the CI set by default). Each case's outcome is
// appended to TERN_FAULT_RECORD for scripts/soak.sh.
#include <gtest/gtest.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "tests/fault/fault_matrix.h"
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

class FaultMatrix : public ::testing::TestWithParam<FaultCase> {
 protected:
  void SetUp() override {
    if (std::getenv("TERND") == nullptr) GTEST_SKIP() << "TERND (path to ternd) is not set";
    char tmpl[] = "/tmp/tern-fault-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

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

std::vector<FaultCase> selected() {
  std::string unknown;
  std::vector<FaultCase> cases = select_fault_cases(std::getenv("TERN_FAULT_CASES"), &unknown);
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
