// Postcopy recovery end to end: a thread guest in postcopy loses its link (migrate-pause on
// either side, or its tcp connections shut down under it), both sides go to postcopy-paused
// with the destination guest still running, then migrate-recover + resume finish the migration
// and the destination checks every page (0 mismatches, and every first touch). Also a second
// break, a failed recovery attempt, and the refusals outside postcopy-paused.
#include <arpa/inet.h>
#include <dirent.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <thread>

#include "dataplane/transport.h"
#include "tests/integration/migration_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;

// How the link breaks.
enum class Break { kPauseSource, kPauseDestination, kShutdownSockets };

struct Case {
  std::string transport;
  bool preempt;
  uint32_t page;
  Break how;
};

std::string case_name(const ::testing::TestParamInfo<Case>& info) {
  const Case& c = info.param;
  const char* how = c.how == Break::kPauseSource        ? "pause_source"
                    : c.how == Break::kPauseDestination ? "pause_destination"
                                                        : "shutdown_sockets";
  return c.transport + (c.preempt ? "_preempt_" : "_postcopy_") +
         (c.page == kHugePage ? "2M_" : "4K_") + how;
}

// Small guests: recovery is about the link, not the volume. Bandwidth is capped so that the
// background push takes a few seconds and the break lands in postcopy.
uint64_t recovery_guest_bytes() { return small_scale() || tiny_scale() ? (32ull << 20) : (64ull << 20); }

template <typename M>
bool wait_status(const M& m, MigrationStatus want, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    const MigrationStatus s = m.info().status;
    if (s == want) return true;
    if (is_terminal(s)) return false;
    std::this_thread::sleep_for(2ms);
  }
  return false;
}

// Shuts down (both directions) every connected tcp socket of this process whose local or peer
// port is `port`: the migration's connections to that listener, cut under both engines.
int shutdown_sockets_on_port(uint16_t port) {
  int cut = 0;
  DIR* d = opendir("/proc/self/fd");
  if (!d) return 0;
  while (dirent* e = readdir(d)) {
    const int fd = atoi(e->d_name);
    if (fd <= 2) continue;
    sockaddr_in local{}, peer{};
    socklen_t ll = sizeof local, pl = sizeof peer;
    if (getsockname(fd, reinterpret_cast<sockaddr*>(&local), &ll) != 0 ||
        local.sin_family != AF_INET)
      continue;
    if (getpeername(fd, reinterpret_cast<sockaddr*>(&peer), &pl) != 0) continue;  // listener
    if (ntohs(local.sin_port) == port || ntohs(peer.sin_port) == port) {
      if (shutdown(fd, SHUT_RDWR) == 0) ++cut;
    }
  }
  closedir(d);
  return cut;
}

uint16_t port_of(const std::string& uri) {
  return static_cast<uint16_t>(std::stoi(uri.substr(uri.rfind(':') + 1)));
}

// One migration with its guest, switched to postcopy, that the tests break and recover.
struct PostcopyRun {
  std::unique_ptr<ThreadGuest> guest;
  std::unique_ptr<IncomingMigration> incoming;
  std::unique_ptr<OutgoingMigration> outgoing;
  std::string uri;  // where the destination listens
  std::string transport;

  std::string start(const std::string& transport, bool preempt, uint32_t page) {
    this->transport = transport;
    const uint64_t ram = recovery_guest_bytes();
    if (std::string why = reserve_for(ram, page); !why.empty()) return "hugetlb: " + why;
    WorkloadSpec spec;
    spec.vcpus = 2;
    spec.ram_bytes = ram;
    spec.page_size = page;
    spec.wss_fraction = 0.25;
    spec.rate = dirty_rate();
    spec.pattern = Pattern::kRandom;
    auto g = ThreadGuest::create(spec);
    if (!g) return "guest: " + g.status().to_string();
    guest = std::move(*g);
    if (Status s = guest->start(); !s.is_ok()) return s.to_string();
    MigrationParameters params;
    params.multifd_channels = 2;
    params.workers = 1;
    params.max_bandwidth = 4 << 20;  // the push of the populated quarter takes seconds
    incoming = std::make_unique<IncomingMigration>(make_thread_guest_factory(), params);
    auto listening = incoming->start(listen_uri(transport));
    if (!listening) return listening.status().to_string();
    uri = *listening;
    MigrationCapabilities caps;
    caps.postcopy_ram = true;
    caps.postcopy_preempt = preempt;
    outgoing = std::make_unique<OutgoingMigration>(*guest, caps, params);
    if (Status s = outgoing->start(uri); !s.is_ok()) return s.to_string();
    if (Status s = outgoing->start_postcopy(); !s.is_ok()) return s.to_string();
    // The source says postcopy-active before it tells the destination (a pause is then
    // accepted); both are checked so that a regression names its side.
    if (!wait_status(*incoming, MigrationStatus::kPostcopyActive, 30s))
      return std::string("destination never reached postcopy-active: ") +
             status_name(incoming->info().status) + " " + incoming->info().error;
    if (outgoing->info().status != MigrationStatus::kPostcopyActive)
      return std::string("source not postcopy-active while the destination is: ") +
             status_name(outgoing->info().status);
    // Break at once: faults pull a small guest's pages within a few hundred ms, and the test
    // must break postcopy, not a completed migration.
    return "";
  }

  // Both sides paused, the destination guest still running.
  void expect_paused() {
    EXPECT_TRUE(wait_status(*outgoing, MigrationStatus::kPostcopyPaused, 30s))
        << status_name(outgoing->info().status) << ": " << outgoing->info().error;
    EXPECT_TRUE(wait_status(*incoming, MigrationStatus::kPostcopyPaused, 30s))
        << status_name(incoming->info().status) << ": " << incoming->info().error;
    EXPECT_FALSE(incoming->info().error.empty());  // why the link broke
    ASSERT_NE(incoming->guest(), nullptr);
    EXPECT_TRUE(incoming->guest()->running());
  }

  // migrate-recover on a new port, resume there.
  void recover() {
    auto again = incoming->recover(listen_uri(transport));
    ASSERT_TRUE(again.is_ok()) << again.status().to_string();
    Status s = outgoing->resume(*again);
    ASSERT_TRUE(s.is_ok()) << s.to_string();
  }

  // Completed on both sides, every page intact.
  void expect_completed(uint64_t pauses) {
    MigrationStatus src = outgoing->wait(std::chrono::minutes(2));
    MigrationStatus dst = incoming->wait(std::chrono::minutes(1));
    MigrationInfo si = outgoing->info(), di = incoming->info();
    ASSERT_EQ(src, MigrationStatus::kCompleted) << si.error << " / destination: " << di.error;
    ASSERT_EQ(dst, MigrationStatus::kCompleted) << di.error;
    EXPECT_EQ(si.stats.postcopy_recoveries, pauses);
    EXPECT_EQ(di.stats.postcopy_recoveries, pauses);
    EXPECT_GE(si.stats.postcopy_pauses, pauses);
    const uint64_t host_pages = recovery_guest_bytes() / guest->layout().blocks[0].host_page_size;
    EXPECT_LE(si.stats.recovery_missing_pages, host_pages);
    Result<VerifyReport> v = check_destination(*incoming);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
    EXPECT_EQ(v->touched_mismatches, 0u) << v->first_mismatch;
    EXPECT_GT(v->pages_checked, 0u);
    std::cout << "[ figures  ] pauses " << si.stats.postcopy_pauses << ", recoveries "
              << si.stats.postcopy_recoveries << ", missing at the last resume "
              << si.stats.recovery_missing_pages << " host pages, requests "
              << di.stats.postcopy_requests << ", pages checked " << v->pages_checked
              << ", first touches " << v->touched_checked << "\n";
    incoming->guest()->pause();
  }
};

void break_link(PostcopyRun& r, Break how) {
  switch (how) {
    case Break::kPauseSource: {
      Status s = r.outgoing->pause();
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      break;
    }
    case Break::kPauseDestination: {
      Status s = r.incoming->pause();
      ASSERT_TRUE(s.is_ok()) << s.to_string();
      break;
    }
    case Break::kShutdownSockets:
      ASSERT_GT(shutdown_sockets_on_port(port_of(r.uri)), 0);
      break;
  }
}

class Recovery : public ::testing::TestWithParam<Case> {};

TEST_P(Recovery, BrokenPostcopyLinkRecoversAndCompletes) {
  const Case& c = GetParam();
  PostcopyRun r;
  if (std::string why = r.start(c.transport, c.preempt, c.page); !why.empty()) {
    if (why.rfind("hugetlb", 0) == 0) GTEST_SKIP() << why;
    FAIL() << why;
  }
  break_link(r, c.how);
  r.expect_paused();
  std::this_thread::sleep_for(200ms);  // the guest runs on, vCPUs on missing pages wait
  r.recover();
  r.expect_completed(1);
}

// The rdma suite (tests/rdma) builds this file with TERN_IT_TRANSPORTS="rdma".
#ifndef TERN_IT_TRANSPORTS
#define TERN_IT_TRANSPORTS "tcp"
#endif

std::vector<Case> all_cases() {
  std::vector<Case> v;
  for (std::string t : {TERN_IT_TRANSPORTS})
    for (bool preempt : {false, true})
      for (uint32_t p : {kSmallPage, kHugePage})
        for (Break b : {Break::kPauseSource, Break::kPauseDestination, Break::kShutdownSockets})
          if (b != Break::kShutdownSockets || t == "tcp") v.push_back({t, preempt, p, b});
  return v;
}

INSTANTIATE_TEST_SUITE_P(Transports, Recovery, ::testing::ValuesIn(all_cases()), case_name);

// A second break after a recovery, and a recovery attempt that breaks before it resyncs (a
// "source" that connects to the recovery listener and hangs up): both end paused, and the
// next resume completes.
TEST(RecoveryAgain, SecondBreakAndBrokenAttemptStillComplete) {
  PostcopyRun r;
  if (std::string why = r.start("tcp", true, kSmallPage); !why.empty()) FAIL() << why;
  ASSERT_TRUE(r.outgoing->pause().is_ok());
  r.expect_paused();
  r.recover();
  ASSERT_TRUE(wait_status(*r.incoming, MigrationStatus::kPostcopyActive, 30s));
  ASSERT_TRUE(wait_status(*r.outgoing, MigrationStatus::kPostcopyActive, 30s));
  if (r.outgoing->info().status == MigrationStatus::kPostcopyActive) {
    ASSERT_TRUE(r.incoming->pause().is_ok());
    r.expect_paused();
  }
  // A recovery attempt that breaks: the right number of channels, then nothing.
  auto again = r.incoming->recover("tcp:127.0.0.1:0");
  ASSERT_TRUE(again.is_ok()) << again.status().to_string();
  {
    auto tcp = create_transport("tcp");
    ASSERT_TRUE(tcp.is_ok());
    auto chans = (*tcp)->connect(again->substr(4), kFirstBulkChannel + 2, 42, 5s);
    ASSERT_TRUE(chans.is_ok()) << chans.status().to_string();
    std::this_thread::sleep_for(300ms);
  }  // closed before any resume
  std::this_thread::sleep_for(300ms);
  EXPECT_TRUE(wait_status(*r.incoming, MigrationStatus::kPostcopyPaused, 30s))
      << status_name(r.incoming->info().status);
  // A resume where nothing listens fails and stays paused.
  ASSERT_TRUE(r.outgoing->resume("tcp:127.0.0.1:1").is_ok());
  std::this_thread::sleep_for(200ms);
  EXPECT_TRUE(wait_status(*r.outgoing, MigrationStatus::kPostcopyPaused, 30s))
      << status_name(r.outgoing->info().status);
  // The destination still listens where the broken attempt came.
  ASSERT_TRUE(r.outgoing->resume(*again).is_ok());
  r.expect_completed(2);
}

TEST(RecoveryRefused, OutsidePostcopyPausedWithAClearError) {
  auto g = ThreadGuest::create(WorkloadSpec{});
  ASSERT_TRUE(g.is_ok()) << g.status().to_string();
  ASSERT_TRUE((*g)->start().is_ok());
  IncomingMigration in(make_thread_guest_factory(), MigrationParameters{});
  auto r = in.recover("tcp:127.0.0.1:0");
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("postcopy-paused"), std::string::npos)
      << r.status().message();
  EXPECT_NE(in.pause().message().find("postcopy only"), std::string::npos);
  auto uri = in.start("tcp:127.0.0.1:0");
  ASSERT_TRUE(uri.is_ok());
  OutgoingMigration out(**g, MigrationCapabilities{}, MigrationParameters{});
  Status s = out.resume(*uri);
  EXPECT_NE(s.message().find("status none"), std::string::npos) << s.message();
  ASSERT_TRUE(out.start(*uri).is_ok());
  s = out.pause();
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("postcopy only"), std::string::npos) << s.message();
  s = out.resume(*uri);
  EXPECT_NE(s.message().find("postcopy-paused"), std::string::npos) << s.message();
  EXPECT_EQ(out.wait(std::chrono::minutes(2)), MigrationStatus::kCompleted) << out.info().error;
}

}  // namespace
}  // namespace tern
