// Page integrity (__io.github.tern_page-integrity) end to end between two keyed engines (tcp
// and loopback): with it on both sides precopy and postcopy migrate with 0 mismatches; a page
// whose bytes were changed on the way (a flipped byte, marker_tamper.h's hook at the receiving
// end of the transport, where an attacker's bytes would land) fails the migration before the
// guest runs on the destination, the source guest keeps running, the destination re-arms and
// the real migration completes; in postcopy a changed page is never placed; a replayed page
// tag is refused at once; both sides must agree on the parameter, and it needs a key. On tcp a
// real man in the middle (tamper_proxy.h) changes a page on the wire.
#include <gtest/gtest.h>

#include "dataplane/engine/marker_tamper.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/integration/tamper_proxy.h"
#include "tests/integration/trust_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;
using engine::MarkerKind;
using engine::MarkerTamper;

MigrationParameters with_integrity(bool on = true) {
  MigrationParameters p = with_key(test_key('k'));
  p.page_integrity = on;
  return p;
}

// A running guest of `ram` bytes that a migration with page integrity converges on: in the rdma
// suite's VM (tiny scale: ~25 MB/s, and the tags' AES instructions emulated) 16 MiB written at
// 100 pages/s per vCPU; elsewhere 2000.
std::unique_ptr<ThreadGuest> converging_guest(uint64_t ram, bool prefill = false) {
  return running_thread_guest(tiny_scale() ? (16ull << 20) : ram, prefill,
                              tiny_scale() ? 100 : 2000);
}

class PageIntegrityTest : public ::testing::TestWithParam<std::string> {};

TEST_P(PageIntegrityTest, PrecopyMigratesWithZeroMismatches) {
  IncomingMigration in(make_thread_guest_factory(), with_integrity());
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  auto guest = converging_guest(64ull << 20, /*prefill=*/true);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_integrity());
}

TEST_P(PageIntegrityTest, PostcopyMigratesWithZeroMismatches) {
  KeyedPostcopy m;
  ASSERT_NO_FATAL_FAILURE(m.run(GetParam(), with_integrity()));
  m.expect_completed_clean();
}

TEST_P(PageIntegrityTest, InPostcopyAFlippedPageIsNeverPlaced) {
  // The first page answered on the urgent channel (postcopy only), one byte changed.
  engine::arm_marker_tamper(MarkerKind::kUrgentPage, MarkerTamper::kFlip);
  KeyedPostcopy m;
  ASSERT_NO_FATAL_FAILURE(m.run(GetParam(), with_integrity()));
  EXPECT_EQ(m.in->wait(60s), MigrationStatus::kFailed);
  EXPECT_NE(m.in->info().error.find("failed authentication"), std::string::npos)
      << m.in->info().error;
  EXPECT_NE(m.in->info().error.find("it was not placed"), std::string::npos)
      << m.in->info().error;
  EXPECT_EQ(m.out->wait(30s), MigrationStatus::kFailed) << m.out->info().error;
  EXPECT_EQ(engine::take_marker_tamper(MarkerKind::kUrgentPage), MarkerTamper::kNone);
}

TEST_P(PageIntegrityTest, AFlippedPageByteFailsBeforeTheGuestRunsThereThenTheRealSourceMigrates) {
  IncomingMigration in(make_thread_guest_factory(), with_integrity());
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  // A guest that writes 1 page/s: the flipped page is not sent again, so it stays unverified;
  // the destination refuses the device state (the source paused its guest for the final round,
  // and resumes it), the guest never runs there.
  engine::arm_marker_tamper(MarkerKind::kPage, MarkerTamper::kFlip);
  expect_refused_with("host page(s) failed authentication", /*by_source=*/false, in, *uri,
                      with_integrity(), /*guest_rate=*/1, /*paused_ok=*/true);
  EXPECT_EQ(engine::take_marker_tamper(MarkerKind::kPage), MarkerTamper::kNone);
  // A replayed tag is refused when it arrives.
  engine::arm_marker_tamper(MarkerKind::kPage, MarkerTamper::kReplay);
  expect_refused_with("page tag failed authentication", /*by_source=*/false, in, *uri,
                      with_integrity(), 2000, /*paused_ok=*/true);
  EXPECT_EQ(engine::take_marker_tamper(MarkerKind::kPage), MarkerTamper::kNone);
  auto guest = converging_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_integrity());
}

// A real man in the middle on tcp (tamper_proxy.h) changes a byte of a page, and of every copy
// of it, on the wire.
TEST(PageIntegrityOnTheWire, AChangedPageIsRefusedThenTheRealSourceMigrates) {
  if (!transport_listed("tcp")) GTEST_SKIP() << "tcp only, and this binary tests other transports";
  IncomingMigration in(make_thread_guest_factory(), with_integrity());
  auto uri = in.start("tcp:127.0.0.1:0");
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  const int port = std::stoi(uri->substr(uri->rfind(':') + 1));
  TamperProxy proxy(port, TamperProxy::Edit::kFlipPage);
  ASSERT_NE(proxy.port(), 0);
  const std::string via_proxy = "tcp:127.0.0.1:" + std::to_string(proxy.port());
  // A guest that writes 1 page/s: it converges at once, even in the rdma suite's slow VM.
  expect_refused_with("host page(s) failed authentication", /*by_source=*/false, in, via_proxy,
                      with_integrity(), /*guest_rate=*/1, /*paused_ok=*/true);
  EXPECT_TRUE(proxy.edited());
  proxy.pass_all();  // the same path, now forwarding unchanged: the real migration completes
  auto guest = converging_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, via_proxy, with_integrity());
}

TEST_P(PageIntegrityTest, BothSidesMustAgreeAndItNeedsAKey) {
  IncomingMigration in(make_thread_guest_factory(), with_integrity());
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  expect_refused_with("is off on the source and on on this destination", /*by_source=*/false,
                      in, *uri, with_integrity(false));
  IncomingMigration off(make_thread_guest_factory(), with_integrity(false));
  auto off_uri = off.start(listen_uri(GetParam()));
  ASSERT_TRUE(off_uri.is_ok()) << off_uri.status().to_string();
  expect_refused_with("is on on the source and off on this destination", /*by_source=*/false,
                      off, *off_uri, with_integrity());

  MigrationParameters insecure;
  insecure.connect_timeout = 3s;
  insecure.page_integrity = true;
  IncomingMigration plain(make_thread_guest_factory(), insecure);
  auto plain_uri = plain.start(listen_uri(GetParam()));
  ASSERT_TRUE(plain_uri.is_ok()) << plain_uri.status().to_string();
  auto guest = running_thread_guest(16ull << 20);
  ASSERT_TRUE(guest);
  OutgoingMigration out(*guest, {}, insecure);
  ASSERT_TRUE(out.start(*plain_uri).is_ok());
  EXPECT_EQ(out.wait(30s), MigrationStatus::kFailed);
  EXPECT_NE(out.info().error.find("needs session keys"), std::string::npos) << out.info().error;
  EXPECT_TRUE(guest->running());
}

INSTANTIATE_TEST_SUITE_P(Transports, PageIntegrityTest, ::testing::Values(TERN_IT_TRANSPORTS),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
