// Only the right peer, end to end between two engines (tcp and loopback): with a pre-shared
// key, intruders (no key, a wrong key) are dropped at their handshake and the real source then
// migrates with 0 mismatches; a fake destination (another key) cannot move a source on: the
// source fails at connect, its guest keeps running. A destination that expects a guest of one
// size refuses a layout of another before it allocates, and stays armed for the right one.
#include <gtest/gtest.h>

#include <mutex>
#include <thread>

#include "dataplane/expected_guest.h"
#include "dataplane/transport.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/integration/trust_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;

class PeerTrust : public ::testing::TestWithParam<std::string> {};

TEST_P(PeerTrust, IntrudersAreDroppedThenTheRealSourceMigrates) {
  Notices notices;
  IncomingMigration in(make_thread_guest_factory(), with_key(test_key('k')));
  notices.attach(in);
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  {
    // No key: its channels connect (hello only) and send a layout at once.
    auto t = create_transport(GetParam());
    ASSERT_TRUE(t.is_ok());
    auto set = (*t)->connect(parse_uri(*uri)->address, 3, 77, 3s);
    ASSERT_TRUE(set.is_ok()) << set.status().to_string();
    const std::vector<uint8_t> layout = encode_layout({{{"ram", 1ull << 30, 4096}}});
    TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(layout.size()),
                          static_cast<uint32_t>(ControlType::kLayout)),
              layout.data()};
    ASSERT_EQ((*set)[0]->post(&f, 1), 1u);
    (*set)[0]->flush();
    std::this_thread::sleep_for(200ms);
  }
  {
    // A wrong key: the source side itself refuses (the destination's proof does not match).
    auto guest = running_thread_guest(16ull << 20);
    ASSERT_TRUE(guest);
    OutgoingMigration out(*guest, {}, with_key(test_key('w')));
    ASSERT_TRUE(out.start(*uri).is_ok());
    EXPECT_EQ(out.wait(30s), MigrationStatus::kFailed);
    EXPECT_NE(out.info().error.find("cannot prove it knows the key"), std::string::npos)
        << out.info().error;
  }
  EXPECT_EQ(in.info().status, MigrationStatus::kNone) << "an intruder started a migration";
  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_key(test_key('k')));
  EXPECT_TRUE(in.info().authenticated);
  EXPECT_NE(notices.all().find("not authenticated"), std::string::npos) << notices.all();
}

TEST_P(PeerTrust, AFakeDestinationCannotMoveTheSourceOn) {
  IncomingMigration fake(make_thread_guest_factory(), with_key(test_key('f')));
  auto uri = fake.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  auto guest = running_thread_guest(16ull << 20);
  ASSERT_TRUE(guest);
  std::vector<MigrationStatus> seen;  // outlives `out`, whose callbacks write it
  std::mutex mu;
  OutgoingMigration out(*guest, {}, with_key(test_key('k')));
  out.on_status([&](MigrationStatus s, const std::string&) {
    std::lock_guard<std::mutex> lock(mu);
    seen.push_back(s);
  });
  ASSERT_TRUE(out.start(*uri).is_ok());
  ASSERT_EQ(out.wait(30s), MigrationStatus::kFailed);
  EXPECT_NE(out.info().error.find("not migrating to it"), std::string::npos) << out.info().error;
  EXPECT_EQ(out.info().stats.transferred, 0u);
  EXPECT_TRUE(guest->running());
  std::lock_guard<std::mutex> lock(mu);
  for (MigrationStatus s : seen) {
    EXPECT_NE(s, MigrationStatus::kDevice);
    EXPECT_NE(s, MigrationStatus::kPostcopyActive);
    EXPECT_NE(s, MigrationStatus::kCompleted);
  }
}

TEST_P(PeerTrust, ALayoutOfAnotherSizeIsRefusedAndTheDestinationStaysArmed) {
  IncomingMigration in(expecting(make_thread_guest_factory(), {.ram_bytes = 16ull << 20}),
                       with_key(test_key('k')));
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  {
    auto big = running_thread_guest(64ull << 20);
    ASSERT_TRUE(big);
    OutgoingMigration out(*big, {}, with_key(test_key('k')));
    ASSERT_TRUE(out.start(*uri).is_ok());
    EXPECT_EQ(out.wait(30s), MigrationStatus::kFailed);
    EXPECT_EQ(in.wait(30s), MigrationStatus::kFailed);
    EXPECT_NE(in.info().error.find("expects 16 MiB"), std::string::npos) << in.info().error;
    EXPECT_TRUE(big->running());
  }
  auto guest = running_thread_guest(16ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, with_key(test_key('k')));
}

INSTANTIATE_TEST_SUITE_P(Transports, PeerTrust, ::testing::Values(TERN_IT_TRANSPORTS),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
