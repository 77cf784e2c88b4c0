// The KVM guest in VMM processes of its own (tern-kvm-vmm), attached through libtern-vmm to two
// real ternd processes (--attach-socket), migrated over tcp: precopy, postcopy and
// postcopy-preempt, 4K and 2M pages; the destination VMM's guest checks its pages on first
// touch and every page after completion (0 mismatches). The source VMM killed mid-migration
// fails it clearly, and ternd stays up.
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>
#include <tuple>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "dataplane/ram_block.h"
#include "tests/control/vmm_migration.h"
#include "tests/integration/migration_helpers.h"
#include "tests/kvm/kvm_skip.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;
using testing_support::tiny_scale;

class KvmVmm : public ::testing::Test {
 protected:
  void SetUp() override {
    TERN_SKIP_WITHOUT_KVM();
    if (std::getenv("TERND") == nullptr || std::getenv("TERN_KVM_VMM") == nullptr)
      GTEST_SKIP() << "TERND and TERN_KVM_VMM (paths to the binaries) are not set";
    char tmpl[] = "/tmp/tern-kvm-vmm-XXXXXX";
    ASSERT_NE(mkdtemp(tmpl), nullptr);
    dir_ = tmpl;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }
  // tiny: KVM nested in the TCG VM (tests/kvm/run.sh), sized as kvm_migration_test's guests.
  static uint64_t ram() { return (tiny_scale() ? 64ull : 128ull) << 20; }
  static std::string spec(const std::string& page) {
    return "vcpus=2,ram=" + std::to_string(ram() >> 20) + "M,page=" + page +
           ",wss=" + (tiny_scale() ? "4M" : "16M") + ",rate=2000,read=20%,pattern=random,seed=3";
  }
  std::string dir_;
};

class KvmVmmModes : public KvmVmm,
                    public ::testing::WithParamInterface<std::tuple<Mode, std::string>> {};

TEST_P(KvmVmmModes, OutOfProcessKvmGuestMigratesWithEveryPageVerified) {
  const auto [mode, page] = GetParam();
  if (page == "2M") {
    auto r = reserve_huge_pages(2 * (ram() / kHugePage) + 8);  // both sides
    if (!r) GTEST_SKIP() << "2M pages need hugetlb: " << r.status().message();
  }
  VmmMigration m;
  m.kind = kKvmVmm;
  m.spec = spec(page);
  m.mode = mode;
  m.postcopy_bandwidth = 16 << 20;
  m.expect_touched = true;  // the vCPUs touched pages through the VMM's own userfaultfd
  migrate_between_vmms(dir_, m);
}

INSTANTIATE_TEST_SUITE_P(
    Tcp, KvmVmmModes,
    ::testing::Combine(::testing::Values(Mode::kPrecopy, Mode::kPostcopy, Mode::kPreempt),
                       ::testing::Values("4K", "2M")),
    mode_name);

TEST_F(KvmVmm, SourceVmmKilledMidMigrationFailsItClearlyAndTerndStaysUp) {
  // Held to 1 MB/s: the working set alone takes seconds, so the kill lands mid-migration.
  kill_source_vmm_mid_migration(dir_, kKvmVmm, spec("4K"), 1 << 20);
}

}  // namespace
}  // namespace tern::control
