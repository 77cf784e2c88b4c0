// Sealed markers on the data channels, end to end between two keyed engines (tcp and
// loopback): a round end on a bulk channel, or a page request on the urgent channel, that was
// changed (a flipped byte) or replayed on the way after authentication is refused with
// "... failed authentication", the migration fails, and a real migration completes afterwards
// with 0 mismatches. Precopy: the destination re-arms and takes the real source; the source
// guest keeps running. Postcopy (requests): the guest already runs on the destination, so that
// migration fails; a keyed postcopy migration then completes with sealed requests. The
// tampering is marker_tamper.h's hook on the receiving side (the bytes an attacker on the path
// would have delivered).
#include <gtest/gtest.h>

#include <thread>

#include "dataplane/engine/marker_tamper.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/integration/trust_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;
using engine::MarkerKind;
using engine::MarkerTamper;

class MarkerTamperTest : public ::testing::TestWithParam<std::string> {};

TEST_P(MarkerTamperTest, AFlippedOrReplayedRoundEndIsRefusedThenTheRealSourceMigrates) {
  IncomingMigration in(make_thread_guest_factory(), with_key(test_key('k')));
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  for (MarkerTamper t : {MarkerTamper::kFlip, MarkerTamper::kReplay}) {
    engine::arm_marker_tamper(MarkerKind::kRoundEnd, t);
    expect_refused_with("round end failed authentication", /*by_source=*/false, in, *uri);
    EXPECT_EQ(engine::take_marker_tamper(MarkerKind::kRoundEnd), MarkerTamper::kNone);
  }
  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_key(test_key('k')));
}

// A keyed postcopy migration of a small guest whose pages the destination's vCPUs fault on
// (the push is throttled, so requests are what brings most pages). Returns the source's end.
struct KeyedPostcopy {
  std::unique_ptr<ThreadGuest> guest;
  std::unique_ptr<IncomingMigration> in;
  std::unique_ptr<OutgoingMigration> out;

  void run(const std::string& transport) {
    WorkloadSpec spec;
    spec.vcpus = 2;
    spec.ram_bytes = 32ull << 20;
    spec.wss_fraction = 0.5;
    spec.rate = dirty_rate();
    spec.pattern = Pattern::kRandom;
    auto g = ThreadGuest::create(spec);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    guest = std::move(*g);
    ASSERT_TRUE(guest->start().is_ok());
    MigrationParameters params = with_key(test_key('k'));
    params.max_bandwidth = 2 << 20;  // faults, not the push, bring the pages
    in = std::make_unique<IncomingMigration>(make_thread_guest_factory(), params);
    auto uri = in->start(listen_uri(transport));
    ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
    MigrationCapabilities caps;
    caps.postcopy_ram = true;
    out = std::make_unique<OutgoingMigration>(*guest, caps, params);
    ASSERT_TRUE(out->start(*uri).is_ok());
    ASSERT_TRUE(out->start_postcopy().is_ok());
  }
};

TEST_P(MarkerTamperTest, AFlippedOrReplayedPageRequestIsRefused) {
  for (MarkerTamper t : {MarkerTamper::kFlip, MarkerTamper::kReplay}) {
    engine::arm_marker_tamper(MarkerKind::kRequest, t);
    KeyedPostcopy m;
    ASSERT_NO_FATAL_FAILURE(m.run(GetParam()));
    EXPECT_EQ(m.out->wait(60s), MigrationStatus::kFailed);
    EXPECT_NE(m.out->info().error.find("page request failed authentication"), std::string::npos)
        << "source: " << m.out->info().error << " / destination: " << m.in->info().error;
    EXPECT_EQ(m.in->wait(30s), MigrationStatus::kFailed) << m.in->info().error;
    EXPECT_EQ(engine::take_marker_tamper(MarkerKind::kRequest), MarkerTamper::kNone);
  }
}

TEST_P(MarkerTamperTest, KeyedPostcopyWithSealedRequestsCompletes) {
  KeyedPostcopy m;
  ASSERT_NO_FATAL_FAILURE(m.run(GetParam()));
  ASSERT_EQ(m.out->wait(120s), MigrationStatus::kCompleted)
      << m.out->info().error << " (destination: " << m.in->info().error << ")";
  ASSERT_EQ(m.in->wait(30s), MigrationStatus::kCompleted) << m.in->info().error;
  EXPECT_GT(m.in->info().stats.postcopy_requests, 0u);
  auto v = check_destination(*m.in);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
}

INSTANTIATE_TEST_SUITE_P(Transports, MarkerTamperTest, ::testing::Values("tcp", "loopback"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
