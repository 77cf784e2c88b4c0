// Integration, real ternd processes over tcp on 127.0.0.1 with TLS 1.3 and throwaway x509
// credentials (docs/security.md): QEMU's tls-creds / tls-hostname / tls-authz through QMP; the
// right source migrates precopy (TLS only) and postcopy-preempt (TLS and a pre-shared key) with
// every page verified; sources without a client certificate, with a subject not in tls-authz,
// or without TLS fail, and the right source refuses the destination for a tls-hostname its
// certificate lacks; the destination stays armed, the source keeps its guest, and then the
// right source migrates to it. x509 over dpdk: dpdk_ternd_test (X509OverMemif).
#include <gtest/gtest.h>

#include <chrono>
#include <cstdlib>
#include <string>

#include "control/qmp_names.h"
#include "tests/control/ternd_process.h"
#include "tests/dataplane/test_tls_certs.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

constexpr const char* kGuest =
    "threads,vcpus=2,ram=32M,page=4K,wss=25%,rate=20000,pattern=random,seed=1";

class TerndTls : public TerndDirTest {
 protected:
  void SetUp() override {
    TerndDirTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    pki_ = testing_support::make_test_pki(dir_);
    if (!pki_.error.empty()) GTEST_SKIP() << pki_.error;
  }
  // The destination guest's verification: pages were checked and none differs.
  void expect_verified(QmpClient& d) {
    auto dg = d.execute(ext::kQueryGuest);
    ASSERT_TRUE(dg.is_ok());
    EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u);
    EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"]["touched-mismatches"], 0) << dg->dump(2);
  }
  // Runs a migration from a new source started with `args` to `uri`; its final query-migrate.
  Json refused_source(const std::string& name, std::vector<std::string> args,
                      const std::string& uri) {
    args.insert(args.end(), {"--guest", kGuest});
    Ternd src(dir_, name, args);
    auto s = src.connect();
    if (!s) return {};
    EXPECT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
    Json sq = wait_done(*s, 60s);
    auto g = s->execute(ext::kQueryGuest);
    EXPECT_TRUE(g.is_ok() && (*g)["running"].get<bool>()) << "the source guest keeps running";
    return sq;
  }
  testing_support::TestPki pki_;
};

TEST_F(TerndTls, RefusedSourcesLeaveTheDestinationArmedForTheRightOne) {
  Ternd dst(dir_, "dst", {"--tls-creds", pki_.good, "--tls-authz-file", pki_.authz_file,
                          "--incoming", "tcp:127.0.0.1:0"});
  auto d = dst.connect();
  ASSERT_TRUE(d);
  const std::string uri = uri_of(*d);
  auto p = d->execute("query-migrate-parameters");
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ((*p)["tls-creds"], "tls0");
  EXPECT_EQ((*p)["tls-authz"], "authz0");
  // Only what ternd defined may be named; TLS, its only authentication, cannot be cleared.
  EXPECT_FALSE(d->execute("migrate-set-parameters", {{"tls-creds", pki_.good}}).is_ok());
  auto cleared = d->execute("migrate-set-parameters", {{"tls-creds", ""}});
  ASSERT_FALSE(cleared.is_ok());
  EXPECT_NE(cleared.status().message().find("only authentication"), std::string::npos);

  // The destination checks a client certificate after the client's TLS 1.3 handshake ended:
  // the source learns of the refusal from the alert or the close that follows.
  Json q = refused_source("nocert", {"--tls-creds", pki_.no_client}, uri);
  EXPECT_EQ(q["status"], "failed") << q.dump(2);
  EXPECT_NE(q.value("error-desc", "").find("refuse"), std::string::npos) << q.dump(2);
  q = refused_source("stranger", {"--tls-creds", pki_.stranger}, uri);
  EXPECT_EQ(q["status"], "failed") << q.dump(2);
  EXPECT_NE(q.value("error-desc", "").find("refuse"), std::string::npos) << q.dump(2);
  q = refused_source("plain", {"--insecure"}, uri);
  EXPECT_EQ(q["status"], "failed") << q.dump(2);

  // The right source first refuses the destination for a name its certificate does not carry,
  // keeps its guest, and then migrates to it by a name it does carry.
  Ternd src(dir_, "src", {"--tls-creds", pki_.good, "--guest", kGuest});
  auto s = src.connect();
  ASSERT_TRUE(s);
  ASSERT_TRUE(
      s->execute("migrate-set-parameters", {{"tls-hostname", "migration.example"}}).is_ok());
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  q = wait_done(*s, 60s);
  EXPECT_EQ(q["status"], "failed") << q.dump(2);
  EXPECT_NE(q.value("error-desc", "").find("not for 'migration.example'"), std::string::npos)
      << q.dump(2);
  auto g = s->execute(ext::kQueryGuest);
  ASSERT_TRUE(g.is_ok());
  EXPECT_TRUE((*g)["running"].get<bool>()) << "the source guest keeps running";
  ASSERT_TRUE(s->execute("migrate-set-parameters", {{"tls-hostname", "localhost"}}).is_ok());
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  Json sq = wait_done(*s, 120s);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kChannelSecurity], "tls");
  EXPECT_EQ(dq[ext::kChannelSecurity], "tls");
  EXPECT_NE(sq.value(ext::kChannelEncryption, "").find("TLS 1.3"), std::string::npos)
      << sq.dump(2);
  expect_verified(*d);
}

TEST_F(TerndTls, PostcopyPreemptOverTlsWithAKeyCompletes) {
  Ternd dst(dir_, "dst", {"--tls-creds", pki_.good, "--auth-key-file", throwaway_key(dir_),
                          "--incoming", "tcp:127.0.0.1:0"});
  Ternd src(dir_, "src", {"--tls-creds", pki_.good, "--auth-key-file", throwaway_key(dir_),
                          "--guest", kGuest});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  ASSERT_TRUE(arm_postcopy(*s, /*preempt=*/true, 32 << 20));
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri_of(*d)}}).is_ok());
  ASSERT_TRUE(start_postcopy_when_active(*s, 100, 50ms));
  Json sq = wait_done(*s, 120s);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kChannelSecurity], "tls+psk");
  EXPECT_GT(sq["ram"]["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
  expect_verified(*d);
}

}  // namespace
}  // namespace tern::control
