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
    // A replay comes right after the real round end was accepted, so that round's ack may be
    // on its way: a source whose guest converged then pauses it for switchover (status device)
    // before the destination's refusal arrives, and resumes it (seen over rdma in the VM).
    // A flipped round end never opens: its round is never acked, the source never switches.
    expect_refused_with("round end failed authentication", /*by_source=*/false, in, *uri,
                        with_key(test_key('k')), 2000,
                        /*paused_ok=*/t == MarkerTamper::kReplay);
    EXPECT_EQ(engine::take_marker_tamper(MarkerKind::kRoundEnd), MarkerTamper::kNone);
  }
  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_key(test_key('k')));
}

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
  m.expect_completed_clean();
}

INSTANTIATE_TEST_SUITE_P(Transports, MarkerTamperTest, ::testing::Values(TERN_IT_TRANSPORTS),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
