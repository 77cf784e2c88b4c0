// Test support: one migration between two real ternd processes whose guests live in VMM
// processes of their own (tern-thread-vmm or tern-kvm-vmm, attached through libtern-vmm),
// checked end to end: completed on both sides, the destination VMM's guest checked every page
// (0 mismatches), postcopy reached when asked. Used by tests/control/attach_migration_test.cc
// and tests/kvm/kvm_vmm_test.cc.
#pragma once

#include <gtest/gtest.h>

#include <chrono>
#include <string>
#include <tuple>
#include <vector>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "tests/control/ternd_process.h"
#include "tests/control/vmm_process.h"

namespace tern::control {

enum class Mode { kPrecopy, kPostcopy, kPreempt };

// "postcopy_4K" for the (mode, page) parameters of a test.
inline std::string mode_name(const ::testing::TestParamInfo<std::tuple<Mode, std::string>>& info) {
  static const char* const kNames[] = {"precopy", "postcopy", "preempt"};
  return std::string(kNames[static_cast<int>(std::get<0>(info.param))]) + "_" +
         std::get<1>(info.param);
}

// Which VMM program: the environment variable naming its path, and the path used without it.
struct VmmKind {
  const char* bin_env;
  const char* fallback;
};
inline constexpr VmmKind kThreadVmm{"TERN_THREAD_VMM", "tern-thread-vmm"};
inline constexpr VmmKind kKvmVmm{"TERN_KVM_VMM", "tern-kvm-vmm"};

// The destination's verification after a completed migration, checked at 0 mismatches; with
// `touched`, also that the guest checked pages on first touch (postcopy).
inline void expect_verified(QmpClient& d, bool touched = false) {
  auto dg = d.execute(ext::kQueryGuest);
  ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
  ASSERT_TRUE(dg->contains("verification")) << dg->dump(2);
  const Json& v = (*dg)["verification"];
  EXPECT_GT(v["pages-checked"].get<uint64_t>(), 0u) << dg->dump(2);
  EXPECT_EQ(v["mismatches"], 0) << dg->dump(2);
  EXPECT_EQ(v["touched-mismatches"], 0) << dg->dump(2);
  if (touched) { EXPECT_GT(v["touched-checked"].get<uint64_t>(), 0u) << dg->dump(2); }
}

// What one migration between VMMs looks like.
struct VmmMigration {
  VmmKind kind = kThreadVmm;
  std::string spec;                          // --spec of both VMMs
  Mode mode = Mode::kPrecopy;
  std::string listen = "tcp:127.0.0.1:0";    // the destination's --incoming
  std::vector<std::string> ternd_args;       // extra arguments of both ternd
  uint64_t postcopy_bandwidth = 32 << 20;    // max-bandwidth while waiting to switch
  bool expect_touched = false;               // postcopy: the guest checks pages on first touch
  std::vector<std::string> dst_vmm_args;     // extra arguments of the destination VMM
  Json dst_parameters;                       // set on the destination (--incoming defer first)
  // Postcopy: whether pages were placed zero-copy (query-migrate's zero-copy-pages) on the
  // destination: -1 not checked, 0 none, 1 some.
  int expect_zero_copy = -1;
};

// Runs `m` in `dir` (ternd and VMM outputs there) and checks it as said above.
inline void migrate_between_vmms(const std::string& dir, const VmmMigration& m) {
  using namespace std::chrono_literals;
  auto args = [&](std::vector<std::string> a) {
    a.insert(a.end(), m.ternd_args.begin(), m.ternd_args.end());
    return a;
  };
  const std::string datt = dir + "/dst.att", satt = dir + "/src.att";
  const bool defer = !m.dst_parameters.is_null();
  Ternd dst(dir, "dst", args({"--incoming", defer ? "defer" : m.listen, "--attach-socket", datt}));
  std::vector<std::string> dvmm_args = {"--attach", datt, "--incoming", "--spec", m.spec};
  dvmm_args.insert(dvmm_args.end(), m.dst_vmm_args.begin(), m.dst_vmm_args.end());
  VmmProcess dvmm(dir, "dvmm", dvmm_args, m.kind.bin_env, m.kind.fallback);
  Ternd src(dir, "src", args({"--attach-socket", satt}));
  VmmProcess svmm(dir, "svmm", {"--attach", satt, "--spec", m.spec}, m.kind.bin_env,
                  m.kind.fallback);
  ASSERT_TRUE(dst.started() && src.started() && dvmm.started() && svmm.started());
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s) << svmm.output() << dvmm.output();
  ASSERT_TRUE(dvmm.wait_output("attached", 20s)) << dvmm.output();
  if (defer) {
    auto set = d->execute("migrate-set-parameters", m.dst_parameters);
    ASSERT_TRUE(set.is_ok()) << set.status().to_string();
    auto in = d->execute("migrate-incoming", {{"uri", m.listen}});
    ASSERT_TRUE(in.is_ok()) << in.status().to_string();
  }
  std::string uri = (*d->execute(ext::kQueryIncoming))["uri"];
  const bool postcopy = m.mode != Mode::kPrecopy;
  if (postcopy) { ASSERT_TRUE(arm_postcopy(*s, m.mode == Mode::kPreempt, m.postcopy_bandwidth)); }
  auto started = s->execute("migrate", {{"uri", uri}});
  ASSERT_TRUE(started.is_ok()) << started.status().to_string();
  if (postcopy) { ASSERT_TRUE(start_postcopy_when_active(*s, 400, 10ms)); }
  Json sq = wait_done(*s, 180s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2) << svmm.output();
  Json dq = wait_done(*d, 60s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2) << dvmm.output();
  expect_verified(*d, postcopy && m.expect_touched);
  if (postcopy) {
    EXPECT_GT(sq["ram"]["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
  }
  if (m.expect_zero_copy >= 0) {
    const uint64_t zero_copy = dq["ram"][ext::kZeroCopyPages].get<uint64_t>();
    if (m.expect_zero_copy > 0)
      EXPECT_GT(zero_copy, 0u) << "no page placed from the page cache: " << dq.dump(2);
    else
      EXPECT_EQ(zero_copy, 0u) << dq.dump(2);
  }
  EXPECT_TRUE(dvmm.alive()) << "the destination VMM runs the guest: " << dvmm.output();
}

// Starts a migration from `s` to `d` held to `bandwidth` bytes/s (so that a failure injected
// next lands mid-migration) and waits until it is active; false (with a test failure saying
// what the source reported) if it never was.
inline bool start_slow_migration(QmpClient& s, QmpClient& d, uint64_t bandwidth = 4 << 20) {
  std::string uri = (*d.execute(ext::kQueryIncoming))["uri"];
  if (!s.execute("migrate-set-parameters", {{"max-bandwidth", bandwidth}}).is_ok()) return false;
  auto started = s.execute("migrate", {{"uri", uri}});
  EXPECT_TRUE(started.is_ok()) << started.status().to_string();
  if (!started) return false;
  Json q = wait_status(s, "active", std::chrono::seconds(30));
  EXPECT_EQ(q.value("status", ""), "active") << q.dump(2);
  return q.value("status", "") == "active";
}

// The source VMM (of `kind`, with `spec`) killed mid-migration: the migration fails with an
// error naming the VMM, the source ternd stays up and answers, the destination does not
// complete.
inline void kill_source_vmm_mid_migration(const std::string& dir, const VmmKind& kind,
                                          const std::string& spec, uint64_t bandwidth) {
  using namespace std::chrono_literals;
  const std::string datt = dir + "/dst.att", satt = dir + "/src.att";
  Ternd dst(dir, "dst", {"--incoming", "tcp:127.0.0.1:0", "--attach-socket", datt});
  VmmProcess dvmm(dir, "dvmm", {"--attach", datt, "--incoming", "--spec", spec}, kind.bin_env,
                  kind.fallback);
  Ternd src(dir, "src", {"--attach-socket", satt});
  VmmProcess svmm(dir, "svmm", {"--attach", satt, "--spec", spec}, kind.bin_env, kind.fallback);
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s) << svmm.output();
  ASSERT_TRUE(dvmm.wait_output("attached", 20s)) << dvmm.output();
  ASSERT_TRUE(start_slow_migration(*s, *d, bandwidth));
  svmm.kill(SIGKILL);
  Json sq = wait_done(*s, 60s);
  ASSERT_EQ(sq["status"], "failed") << sq.dump(2);
  const std::string why = sq.value("error-desc", "");
  EXPECT_NE(why.find("VMM"), std::string::npos) << why;
  auto again = s->execute("query-migrate");
  ASSERT_TRUE(again.is_ok()) << "ternd is gone: " << again.status().to_string();
  EXPECT_EQ((*again)["status"], "failed");
  EXPECT_NE(wait_done(*d, 30s)["status"], "completed");
}

}  // namespace tern::control
