// End to end over memif: two real ternd processes (destination --incoming dpdk:net_memif0,...,
// source hosting a 64 MiB thread guest) migrate in precopy, postcopy and postcopy-preempt with
// 4K and 2M pages, on a clean link and with loss, reordering and duplication injected in both
// receive paths (TERN_DPDK_FAULTS, seeded); every page must verify on the destination.
// Sealed control frames over memif: a control frame flipped on its way to the destination
// (TERN_TEST_CONTROL_TAMPER, engine/control_tamper.h) fails that migration with "control frame
// failed authentication", the source guest keeps running, and the same destination process,
// listening again (migrate-incoming on a new memif socket), then takes a real migration with
// every page verified.
// x509 over memif (TLS 1.3 handshake in frames, toolkit/channel_tls.h): sources without a
// client certificate, with one from another CA, with a subject not in tls-authz, and a source
// whose tls-hostname the destination's certificate lacks fail with a clear error while the
// destination stays armed and keeps its guest unstarted; then the right source migrates with
// every page verified and channel-security "tls".
// S5 over memif: a 256 MiB guest whose heap freed 75% of its memory and keeps reusing and freeing pages
// migrates with the free-page-hint capability, precopy and postcopy, 4K and 2M; the freed pages
// stay behind and every page in use verifies (a reused page whose new content did not arrive
// would not match its version).
#include <gtest/gtest.h>
#include <signal.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <string>
#include <thread>
#include <vector>

#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "tests/control/ternd_process.h"
#include "dpdk/dpdk_transport.h"
#include "tests/dataplane/test_tls_certs.h"
#include "tests/integration/migration_helpers.h"

namespace tern::control {
namespace {

using namespace std::chrono_literals;

// A scratch directory for the sockets; skips where ternd or DPDK is missing.
class MemifTernds : public ::testing::Test {
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
  // A memif listen URI no other test of this process uses.
  static std::string listen_uri() {
    static int n = 0;
    return "dpdk:net_memif0,socket=/run/tern-dpdk-test-" + std::to_string(::getpid()) + "-" +
           std::to_string(n++) + ".sock";
  }
  // The URI the destination `d` listens on (the client side of its memif).
  static std::string incoming_uri(QmpClient& d) {
    auto inc = d.execute(ext::kQueryIncoming);
    EXPECT_TRUE(inc.is_ok()) << inc.status().to_string();
    std::string uri = inc ? (*inc)["uri"] : "";
    EXPECT_EQ(uri.rfind("dpdk:net_memif0,role=client,", 0), 0u) << uri;
    return uri;
  }
  // The destination's check of every page: present, non-empty, 0 mismatches.
  static void expect_every_page_verified(QmpClient& d) {
    auto dg = d.execute(ext::kQueryGuest);
    ASSERT_TRUE(dg.is_ok()) << dg.status().to_string();
    ASSERT_TRUE(dg->contains("verification")) << dg->dump(2);
    EXPECT_GT((*dg)["verification"]["pages-checked"].get<uint64_t>(), 0u);
    EXPECT_EQ((*dg)["verification"]["mismatches"], 0) << dg->dump(2);
    EXPECT_EQ((*dg)["verification"].value("touched-mismatches", 0), 0) << dg->dump(2);
  }
  std::string dir_;
};

struct Case {
  const char* mode;  // precopy, postcopy, preempt
  const char* page;  // 4K, 2M
  const char* faults;  // TERN_DPDK_FAULTS, "" for a clean link
  const char* name;
};

class TerndOverMemif : public MemifTernds, public ::testing::WithParamInterface<Case> {};

TEST_P(TerndOverMemif, EveryPageVerifies) {
  const Case& c = GetParam();
  const bool huge = std::string(c.page) == "2M";
  if (std::string why = testing_support::reserve_for(64 << 20, huge ? kHugePageBytes : 4096);
      !why.empty())
    GTEST_SKIP() << "2M pages need hugetlb: " << why;
  std::vector<std::string> env;
  if (*c.faults) env.push_back(std::string("TERN_DPDK_FAULTS=") + c.faults);
  Ternd dst(dir_, "dst", {"--workers", "1", "--incoming", listen_uri()}, env);
  Ternd src(dir_, "src",
            {"--workers", "1", "--guest", std::string("threads,vcpus=2,ram=64M,page=") + c.page +
                            ",wss=25%,rate=20000,pattern=random,seed=1"},
            env);
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  const std::string uri = incoming_uri(*d);
  ASSERT_FALSE(uri.empty());

  const std::string mode = c.mode;
  // A bandwidth cap keeps precopy running long enough to switch.
  if (mode != "precopy") {
    ASSERT_TRUE(arm_postcopy(*s, mode == "preempt", 32 << 20));
  }
  auto m = s->execute("migrate", {{"uri", uri}});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  if (mode != "precopy") {
    ASSERT_TRUE(start_postcopy_when_active(*s, 200, 50ms));
  }
  Json sq = wait_done(*s, 180s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kTransport], "dpdk");
  if (mode != "precopy") {
    EXPECT_GT(sq["ram"]["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
  }
  expect_every_page_verified(*d);
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


// A frame changed or replayed on the way after authentication, applied at the destination's
// receiving end (the test hooks control_tamper.h and marker_tamper.h): a control frame, a round
// end on a bulk channel, a page's bytes or its tag (page integrity on).
struct TamperCase {
  const char* env;          // the destination's tamper hook
  bool page_integrity;      // __io.github.tern_page-integrity on both sides
  const char* refusal;      // in the destination's error
  const char* name;
};

class TamperOverMemif : public MemifTernds, public ::testing::WithParamInterface<TamperCase> {
 protected:
  static void set_integrity(QmpClient& c, bool on) {
    auto r = c.execute("migrate-set-parameters", {{ext::kPageIntegrity, on}});
    ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  }
};

TEST_P(TamperOverMemif, IsRefusedThenTheRealMigrationCompletes) {
  const TamperCase& c = GetParam();
  Ternd dst(dir_, "dst", {"--workers", "1", "--incoming", "defer"}, {c.env});
  // Prefilled and written once a second: a changed page is not sent again, so it stays refused.
  Ternd src(dir_, "src", {"--workers", "1", "--prefill", "--guest",
                          "threads,vcpus=2,ram=32M,wss=25%,rate=1,seed=1"});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  // The destination takes its parameters when it starts listening.
  ASSERT_NO_FATAL_FAILURE(set_integrity(*d, c.page_integrity));
  ASSERT_NO_FATAL_FAILURE(set_integrity(*s, c.page_integrity));
  auto listening = d->execute("migrate-incoming", {{"uri", listen_uri()}});
  ASSERT_TRUE(listening.is_ok()) << listening.status().to_string();
  const std::string uri = incoming_uri(*d);
  ASSERT_FALSE(uri.empty());
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  Json sq = wait_done(*s, 60s);
  Json dq = wait_done(*d, 30s);
  EXPECT_EQ(sq["status"], "failed") << sq.dump(2);
  ASSERT_EQ(dq["status"], "failed") << dq.dump(2);
  EXPECT_NE(dq.value("error-desc", "").find(c.refusal), std::string::npos) << dq.dump(2);
  auto g = s->execute(ext::kQueryGuest);
  ASSERT_TRUE(g.is_ok());
  EXPECT_TRUE((*g)["running"].get<bool>()) << "the source guest keeps running";

  // The destination listens again on a new memif socket (a memif server takes its first client
  // only), and a fresh source process connects (one EAL process attaches a client device once).
  auto re = d->execute("migrate-incoming", {{"uri", listen_uri()}});
  ASSERT_TRUE(re.is_ok()) << re.status().to_string();
  Ternd src2(dir_, "src2", {"--workers", "1", "--guest", "threads,vcpus=2,ram=32M,wss=25%,seed=2"});
  auto s2 = src2.connect();
  ASSERT_TRUE(s2);
  ASSERT_NO_FATAL_FAILURE(set_integrity(*s2, c.page_integrity));
  ASSERT_TRUE(s2->execute("migrate", {{"uri", incoming_uri(*d)}}).is_ok());
  sq = wait_done(*s2, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kChannelSecurity], "psk");
  EXPECT_EQ(sq[ext::kPageIntegrity], c.page_integrity);
  EXPECT_EQ(dq[ext::kPageIntegrity], c.page_integrity);
  expect_every_page_verified(*d);
}

INSTANTIATE_TEST_SUITE_P(
    Memif, TamperOverMemif,
    ::testing::Values(
        TamperCase{"TERN_TEST_CONTROL_TAMPER=flip:1:destination", false,
                   "control frame failed authentication", "control_flip"},
        TamperCase{"TERN_TEST_MARKER_TAMPER=flip:round-end", false,
                   "round end failed authentication", "round_end_flip"},
        TamperCase{"TERN_TEST_MARKER_TAMPER=replay:round-end", false,
                   "round end failed authentication", "round_end_replay"},
        TamperCase{"TERN_TEST_MARKER_TAMPER=flip:page", true,
                   "host page(s) failed authentication", "page_flip"},
        TamperCase{"TERN_TEST_MARKER_TAMPER=replay:page", true,
                   "page tag failed authentication", "page_tag_replay"}),
    [](const auto& info) { return std::string(info.param.name); });

class X509OverMemif : public MemifTernds {
 protected:
  void SetUp() override {
    MemifTernds::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    pki_ = testing_support::make_test_pki(dir_);
    if (!pki_.error.empty()) GTEST_SKIP() << pki_.error;
  }
  // A source process with `creds` migrates to `uri` with tls-hostname `hostname`; it fails,
  // its guest keeps running; its error.
  std::string refused_source(const std::string& name, const std::string& creds,
                             const std::string& hostname, const std::string& uri) {
    Ternd src(dir_, name, {"--workers", "1", "--tls-creds", creds, "--guest",
                           "threads,vcpus=2,ram=32M,wss=25%,seed=3"});
    auto s = src.connect();
    EXPECT_TRUE(s);
    if (!s) return "";
    EXPECT_TRUE(s->execute("migrate-set-parameters", {{"tls-hostname", hostname}}).is_ok());
    EXPECT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
    Json sq = wait_done(*s, 60s);
    EXPECT_EQ(sq["status"], "failed") << sq.dump(2);
    auto g = s->execute(ext::kQueryGuest);
    EXPECT_TRUE(g.is_ok() && (*g)["running"].get<bool>()) << "the source guest keeps running";
    std::cout << "[ refused  ] " << name << ": " << sq.value("error-desc", "") << "\n";
    return sq.value("error-desc", "");
  }
  testing_support::TestPki pki_;
};

TEST_F(X509OverMemif, WrongCertificatesAreRefusedThenTheRightPeerMigrates) {
  Ternd dst(dir_, "dst", {"--workers", "1", "--tls-creds", pki_.good, "--tls-authz-file",
                          pki_.authz_file, "--incoming", "defer"});
  auto d = dst.connect();
  ASSERT_TRUE(d);
  struct Refusal {
    const char* name;
    std::string creds, hostname;
    const char* source_sees;
  };
  const Refusal refusals[] = {
      {"nocert", pki_.no_client, "localhost", "refuse"},
      {"otherca", pki_.other_ca, "localhost", "refuse"},
      {"stranger", pki_.stranger, "localhost", "refuse"},
      {"wrongname", pki_.good, "migration.example", "is not for 'migration.example'"},
  };
  // One listener for all: a refused source leaves the destination armed on it.
  auto listening = d->execute("migrate-incoming", {{"uri", listen_uri()}});
  ASSERT_TRUE(listening.is_ok()) << listening.status().to_string();
  const std::string uri = incoming_uri(*d);
  for (const Refusal& r : refusals) {
    SCOPED_TRACE(r.name);
    const std::string error = refused_source(r.name, r.creds, r.hostname, uri);
    EXPECT_NE(error.find(r.source_sees), std::string::npos) << error;
    auto dq = d->execute("query-migrate");
    ASSERT_TRUE(dq.is_ok());
    EXPECT_NE((*dq).value("status", "none"), "completed") << dq->dump(2);
    EXPECT_NE((*dq).value("status", "none"), "active") << "a refused source started a migration";
  }
  Ternd src(dir_, "src", {"--workers", "1", "--tls-creds", pki_.good, "--guest",
                          "threads,vcpus=2,ram=32M,wss=25%,rate=2000,seed=4"});
  auto s = src.connect();
  ASSERT_TRUE(s);
  ASSERT_TRUE(s->execute("migrate-set-parameters", {{"tls-hostname", "localhost"}}).is_ok());
  ASSERT_TRUE(s->execute("migrate", {{"uri", uri}}).is_ok());
  Json sq = wait_done(*s, 120s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kTransport], "dpdk");
  EXPECT_EQ(sq[ext::kChannelSecurity], "tls");
  EXPECT_EQ(dq[ext::kChannelSecurity], "tls");
  EXPECT_NE(sq.value(ext::kChannelEncryption, "").find("page data in clear"), std::string::npos)
      << sq.dump(2);
  std::cout << "[ figures  ] dpdk x509: setup-time " << sq["setup-time"] << " ms, total "
            << sq["total-time"] << " ms\n";
  expect_every_page_verified(*d);
}

struct HintCase {
  const char* mode;  // precopy, postcopy
  const char* page;  // 4K, 2M
};

class FreePageHintOverMemif : public MemifTernds, public ::testing::WithParamInterface<HintCase> {};

TEST_P(FreePageHintOverMemif, FreedPagesStayBehindAndPagesInUseVerify) {
  const HintCase& c = GetParam();
  const bool huge = std::string(c.page) == "2M";
  // 256 MiB: with 2M pages, a smaller guest has too few huge pages that are wholly free (the
  // version table's and those straddling two vCPUs' slices never are).
  const uint64_t ram = 256ull << 20, pages = ram / 4096;
  if (std::string why = testing_support::reserve_for(ram, huge ? kHugePageBytes : 4096);
      !why.empty())
    GTEST_SKIP() << "2M pages need hugetlb: " << why;
  // Every page written once (--prefill), then the heap frees 75% and reuses and frees pages
  // while the migration runs. 2M: a write dirties a whole huge page, and over memif a round is
  // long enough for random writes to dirty every huge page in use, so the guest writes less;
  // otherwise the resends of pages in use would hide what the hints saved.
  Ternd dst(dir_, "dst", {"--workers", "1", "--incoming", listen_uri()});
  Ternd src(dir_, "src",
            {"--workers", "1", "--prefill", "--guest",
             std::string("threads,vcpus=2,ram=256M,page=") + c.page +
                 ",wss=100%,pattern=random,seed=1,free=75%" +
                 (huge ? ",rate=100,reuse=5%" : ",rate=5000,reuse=10%")});
  auto d = dst.connect();
  auto s = src.connect();
  ASSERT_TRUE(d && s);
  const std::string uri = incoming_uri(*d);
  ASSERT_FALSE(uri.empty());
  Json caps = Json::array({{{"capability", ext::kFreePageHint}, {"state", true}}});
  ASSERT_TRUE(s->execute("migrate-set-capabilities", {{"capabilities", caps}}).is_ok());
  const bool postcopy = std::string(c.mode) == "postcopy";
  // Postcopy: the quarter in use takes about a second at this cap, and the switch comes in it.
  if (postcopy) {
    ASSERT_TRUE(arm_postcopy(*s, false, ram / 4));
  }
  auto m = s->execute("migrate", {{"uri", uri}});
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  if (postcopy) {
    ASSERT_TRUE(start_postcopy_when_active(*s, 200, 50ms));
  }
  Json sq = wait_done(*s, 180s);
  ASSERT_EQ(sq["status"], "completed") << sq.dump(2);
  Json dq = wait_done(*d, 30s);
  ASSERT_EQ(dq["status"], "completed") << dq.dump(2);
  EXPECT_EQ(sq[ext::kTransport], "dpdk");
  expect_every_page_verified(*d);

  const Json& r = sq["ram"];
  EXPECT_GE(r[ext::kFreePageHints].get<uint64_t>(), pages * 6 / 10) << r.dump(2);
  EXPECT_GE(r[ext::kFreePagesSkipped].get<uint64_t>(), pages / 2) << r.dump(2);
  EXPECT_EQ(r[ext::kFreePageHintsRefused], 0) << r.dump(2);
  if (postcopy) {
    EXPECT_GT(r["postcopy-bytes"].get<uint64_t>(), 0u) << "never reached postcopy";
  }
  // What moved is about the quarter in use (2M: each write resends its whole huge page).
  const uint64_t data_moved = r["normal"].get<uint64_t>() * 4096;
  // (It also counts resends, more rounds on a slow host: the skips above say the free pages
  // stayed; this catches hints that saved next to nothing.)
  EXPECT_LT(data_moved, ram * 3 / 4) << "free pages were sent: " << r.dump(2);
  std::cout << "[ figures  ] dpdk " << c.mode << " " << c.page << ": "
            << r["transferred"].get<uint64_t>() / 1048576 << " MiB moved of " << ram / 1048576 << " MiB in "
            << sq["total-time"] << " ms; hints " << r[ext::kFreePageHints] << ", skipped "
            << r[ext::kFreePagesSkipped] << "\n";
}

INSTANTIATE_TEST_SUITE_P(Memif, FreePageHintOverMemif,
                         ::testing::Values(HintCase{"precopy", "4K"}, HintCase{"precopy", "2M"},
                                           HintCase{"postcopy", "4K"}, HintCase{"postcopy", "2M"}),
                         [](const auto& info) {
                           return std::string(info.param.mode) + "_" + info.param.page;
                         });

}  // namespace
}  // namespace tern::control
