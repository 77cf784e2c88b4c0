// Out-of-process guests over rdma: two real ternd processes, each with a thread guest in a VMM
// process of its own (tern-thread-vmm, attached through libtern-vmm), migrate over the rdma
// transport (RC queue pairs on the host's device, or rxe0 in the soft-RoCE VM of run.sh) in
// precopy and postcopy, 4K and 2M; the destination VMM's guest checks every page (0 mismatches).
#include <gtest/gtest.h>

#include <cstdlib>
#include <string>

#include "tests/control/vmm_migration.h"
#include "tests/integration/migration_helpers.h"

namespace tern::control {
namespace {

using testing_support::tiny_scale;

class VmmOverRdma : public ::testing::TestWithParam<std::tuple<Mode, std::string>> {
 protected:
  void SetUp() override {
    if (std::getenv("TERND") == nullptr || std::getenv("TERN_THREAD_VMM") == nullptr)
      GTEST_SKIP() << "TERND and TERN_THREAD_VMM (paths to the binaries) are not set";
    char tmpl[] = "/tmp/tern-rdma-vmm-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_P(VmmOverRdma, EveryPageVerifies) {
  const auto [mode, page] = GetParam();
  // tiny: the soft-RoCE VM's emulated CPUs move ~25 MB/s.
  const uint64_t ram = (tiny_scale() ? 32ull : 64ull) << 20;
  if (std::string why = testing_support::reserve_for(ram, page == "2M" ? kHugePage : 4096);
      !why.empty())
    GTEST_SKIP() << "2M pages need hugetlb: " << why;
  VmmMigration m;
  m.spec = "vcpus=2,ram=" + std::to_string(ram >> 20) + "M,page=" + page +
           ",wss=25%,pattern=random,seed=1,rate=" + std::to_string(testing_support::dirty_rate());
  m.mode = mode;
  m.listen = testing_support::listen_uri("rdma");
  m.ternd_args = {"--workers", "1"};
  m.postcopy_bandwidth = tiny_scale() ? (4 << 20) : (32 << 20);
  migrate_between_vmms(dir_, m);
}

INSTANTIATE_TEST_SUITE_P(
    Rdma, VmmOverRdma,
    ::testing::Combine(::testing::Values(Mode::kPrecopy, Mode::kPostcopy),
                       ::testing::Values("4K", "2M")),
    mode_name);

}  // namespace
}  // namespace tern::control
