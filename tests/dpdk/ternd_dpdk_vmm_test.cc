// Out-of-process guests over memif: two real ternd processes, each with its guest in a VMM
// process of its own attached through libtern-vmm (tern-thread-vmm; tern-kvm-vmm where /dev/kvm
// opens), migrate over the dpdk transport in precopy and postcopy; the destination VMM's guest
// checks every page (0 mismatches).
#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdlib>
#include <string>
#include <tuple>

#include "dpdk/dpdk_transport.h"
#include "tests/control/vmm_migration.h"
#include "tests/integration/migration_helpers.h"
#ifdef TERN_HAVE_KVM
#include "vm/kvm/kvm_vm.h"
#endif

namespace tern::control {
namespace {

struct Case {
  bool kvm;
  Mode mode;
  std::string page;
};

class VmmOverMemif : public ::testing::TestWithParam<Case> {
 protected:
  void SetUp() override {
    const Case& c = GetParam();
    const char* vmm = c.kvm ? "TERN_KVM_VMM" : "TERN_THREAD_VMM";
    if (std::getenv("TERND") == nullptr || std::getenv(vmm) == nullptr)
      GTEST_SKIP() << "TERND and " << vmm << " (paths to the binaries) are not set";
#ifdef TERN_HAVE_KVM
    if (c.kvm)
      if (std::string why = kvm_unavailable_reason(); !why.empty()) GTEST_SKIP() << "no KVM: " << why;
#endif
    if (Status s = dpdk_can_start(); !s.is_ok())
      GTEST_SKIP() << "DPDK cannot start here: " << s.to_string();
    if (std::string why = testing_support::reserve_for(64 << 20, c.page == "2M" ? kHugePage : 4096);
        !why.empty())
      GTEST_SKIP() << "2M pages need hugetlb: " << why;
    char tmpl[] = "/tmp/tern-dpdk-vmm-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  std::string dir_;
};

TEST_P(VmmOverMemif, EveryPageVerifies) {
  const Case& c = GetParam();
  static int n = 0;
  VmmMigration m;
  m.kind = c.kvm ? kKvmVmm : kThreadVmm;
  m.spec = "vcpus=2,ram=64M,page=" + c.page +
           (c.kvm ? ",wss=8M,rate=2000,read=20%,seed=3" : ",wss=25%,rate=20000,seed=1");
  m.mode = c.mode;
  m.listen = "dpdk:net_memif0,socket=/run/tern-dpdk-vmm-test-" + std::to_string(::getpid()) +
             "-" + std::to_string(n++) + ".sock";
  m.ternd_args = {"--workers", "1"};
  m.expect_touched = c.kvm;
  migrate_between_vmms(dir_, m);
}

INSTANTIATE_TEST_SUITE_P(
    Memif, VmmOverMemif,
    ::testing::Values(Case{false, Mode::kPrecopy, "4K"}, Case{false, Mode::kPostcopy, "4K"},
                      Case{false, Mode::kPrecopy, "2M"}, Case{false, Mode::kPostcopy, "2M"},
                      Case{true, Mode::kPrecopy, "4K"}, Case{true, Mode::kPostcopy, "4K"},
                      Case{true, Mode::kPostcopy, "2M"}),
    [](const ::testing::TestParamInfo<Case>& info) {
      return std::string(info.param.kvm ? "kvm_" : "threads_") +
             mode_name({{info.param.mode, info.param.page}, info.index});
    });

}  // namespace
}  // namespace tern::control
