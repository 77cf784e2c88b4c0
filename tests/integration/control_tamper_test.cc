// Sealed control frames, end to end between two keyed engines (tcp and loopback): a control
// frame changed on the way after authentication (a flipped byte, a replayed frame) is refused
// with "control frame failed authentication", the migration fails, the source guest keeps
// running, and the real migration to the same destination completes afterwards with 0
// mismatches. A destination that knows the key but replays its acks cannot move the source to
// switchover. The tampering is control_tamper.h's test hook on the receiving side, which sees
// exactly the bytes an attacker on the path would have delivered, and on tcp also a real man
// in the middle (tamper_proxy.h) that flips a byte of, or replays, the sealed layout on the wire.
#include <gtest/gtest.h>

#include "dataplane/engine/control_tamper.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/integration/tamper_proxy.h"
#include "tests/integration/trust_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;
using engine::ControlTamper;
using engine::LinkSide;

constexpr const char* kRefusal = "control frame failed authentication";

// One migration of a fresh guest to `uri` (into `in`), which must fail with the refusal on
// `refusing` side; the source guest keeps running and never reaches switchover.
void expect_refused_by(LinkSide refusing, IncomingMigration& in, const std::string& uri) {
  expect_refused_with(kRefusal, refusing == LinkSide::kSource, in, uri);
}

class ControlTamperTest : public ::testing::TestWithParam<std::string> {
 protected:
  // Arms `tamper` on `side`, then expect_refused_by that side; the hook is used up by it.
  void expect_refused(IncomingMigration& in, const std::string& uri, ControlTamper tamper,
                      LinkSide side) {
    engine::arm_control_tamper(tamper, side);
    expect_refused_by(side, in, uri);
    EXPECT_EQ(engine::take_control_tamper(side).action, ControlTamper::Action::kNone);
  }
};

TEST_P(ControlTamperTest, FlippedOrReplayedFramesAreRefusedThenTheRealSourceMigrates) {
  IncomingMigration in(make_thread_guest_factory(), with_key(test_key('k')));
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  // The layout, one byte flipped on its way to the destination.
  expect_refused(in, *uri, {ControlTamper::Action::kFlip, 1}, LinkSide::kDestination);
  // The layout delivered twice.
  expect_refused(in, *uri, {ControlTamper::Action::kReplay, 1}, LinkSide::kDestination);
  // The destination's layout ack, one byte flipped on its way to the source.
  expect_refused(in, *uri, {ControlTamper::Action::kFlip, 1}, LinkSide::kSource);
  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_key(test_key('k')));
}

TEST_P(ControlTamperTest, ADestinationThatReplaysAcksCannotMoveTheSourceOn) {
  IncomingMigration in(make_thread_guest_factory(), with_key(test_key('k')));
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  // Its layout ack arrives twice: the second copy stands where the first round's ack is due.
  // (A dropped frame is found when the next one arrives: frame_seal_test.)
  expect_refused(in, *uri, {ControlTamper::Action::kReplay, 1}, LinkSide::kSource);
}

TEST_P(ControlTamperTest, WithoutAKeyFramesArePlainAndTheHookDoesNothing) {
  MigrationParameters insecure;
  insecure.connect_timeout = 3s;
  IncomingMigration in(make_thread_guest_factory(), insecure);
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  engine::arm_control_tamper({ControlTamper::Action::kFlip, 1}, LinkSide::kDestination);
  auto guest = running_thread_guest(16ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, insecure);
  // Unsealed links never take it: clear it for the other tests.
  EXPECT_EQ(engine::take_control_tamper(LinkSide::kDestination).action,
            ControlTamper::Action::kFlip);
}

class TcpManInTheMiddle : public ::testing::TestWithParam<TamperProxy::Edit> {};

TEST_P(TcpManInTheMiddle, AnEditedLayoutOnTheWireIsRefusedThenTheRealSourceMigrates) {
  if (!transport_listed("tcp")) GTEST_SKIP() << "tcp only, and this binary tests other transports";
  IncomingMigration in(make_thread_guest_factory(), with_key(test_key('k')));
  auto uri = in.start("tcp:127.0.0.1:0");
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  const int port = std::stoi(uri->substr(uri->rfind(':') + 1));
  TamperProxy proxy(port, GetParam());
  ASSERT_NE(proxy.port(), 0);
  const std::string via_proxy = "tcp:127.0.0.1:" + std::to_string(proxy.port());
  expect_refused_by(LinkSide::kDestination, in, via_proxy);
  EXPECT_TRUE(proxy.edited());
  // The same path, now forwarding unchanged: the real migration completes.
  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, via_proxy, with_key(test_key('k')));
}

INSTANTIATE_TEST_SUITE_P(Edits, TcpManInTheMiddle,
                         ::testing::Values(TamperProxy::Edit::kFlip, TamperProxy::Edit::kReplay),
                         [](const auto& info) {
                           return info.param == TamperProxy::Edit::kFlip ? "flip" : "replay";
                         });

INSTANTIATE_TEST_SUITE_P(Transports, ControlTamperTest, ::testing::Values(TERN_IT_TRANSPORTS),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
