// A destination that stays armed: hostile connections (random bytes, a hello of a foreign
// session, half a hello that stalls) are dropped while a real source migrates; channels that
// arrive a second apart still form one migration; after a cancel or a failure the same
// destination takes the next migration. Every migration that completes has 0 mismatches.
#include <arpa/inet.h>
#include <gtest/gtest.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <mutex>
#include <thread>

#include "dataplane/toolkit/hello_transport.h"
#include "dataplane/transport.h"
#include "tests/dataplane/transport/hello_access.h"
#include "tests/integration/migration_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;

std::unique_ptr<ThreadGuest> small_guest() { return running_thread_guest(32ull << 20); }

// Migrates `guest` to `uri` and checks the destination's pages.
void migrate_and_verify(Guest& guest, IncomingMigration& incoming, const std::string& uri) {
  OutgoingMigration out(guest, {}, {});
  ASSERT_TRUE(out.start(uri).is_ok());
  ASSERT_EQ(out.wait(60s), MigrationStatus::kCompleted) << out.info().error;
  ASSERT_EQ(incoming.wait(30s), MigrationStatus::kCompleted) << incoming.info().error;
  auto v = check_destination(incoming);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_GT(v->pages_checked, 0u);
  EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
}

// Notices the destination logged, for the assertions.
struct Notices {
  std::mutex mu;
  std::vector<std::string> lines;
  void attach(IncomingMigration& in) {
    in.on_notice([this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      lines.push_back(s.message());
    });
  }
  bool any(const std::string& needle) {
    std::lock_guard<std::mutex> lock(mu);
    for (auto& l : lines)
      if (l.find(needle) != std::string::npos) return true;
    return false;
  }
};

int tcp_connect(const std::string& uri) {
  auto a = parse_uri(uri)->address;
  const auto colon = a.rfind(':');
  sockaddr_in sa{};
  sa.sin_family = AF_INET;
  sa.sin_port = htons(static_cast<uint16_t>(std::stoi(a.substr(colon + 1))));
  ::inet_pton(AF_INET, a.substr(0, colon).c_str(), &sa.sin_addr);
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  EXPECT_EQ(::connect(fd, reinterpret_cast<sockaddr*>(&sa), sizeof(sa)), 0);
  return fd;
}

TEST(Rearm, HostileConnectionsThenARealMigrationCompletes) {
  IncomingMigration incoming(make_thread_guest_factory(), {});
  Notices notices;
  notices.attach(incoming);
  auto uri = incoming.start("tcp:127.0.0.1:0");
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  // Random bytes.
  int noise = tcp_connect(*uri);
  std::vector<uint8_t> junk(4096);
  for (size_t i = 0; i < junk.size(); ++i) junk[i] = static_cast<uint8_t>(i * 7919 + 13);
  ASSERT_EQ(::write(noise, junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  // Half a hello header, then silence (kept open through the real migration).
  int half = tcp_connect(*uri);
  FrameHeader h = make_header(FrameType::kHello, 0, 0, sizeof(HelloPayload), 0, 0, 0);
  ASSERT_EQ(::write(half, &h, sizeof(h) / 2), static_cast<ssize_t>(sizeof(h) / 2));
  // A whole hello of a foreign session (1 channel of 3, never completed).
  auto foreign_t = create_transport("tcp");
  ASSERT_TRUE(foreign_t.is_ok());
  auto foreign = toolkit::HelloTransportAccess::connect_with_hellos(
      **foreign_t, parse_uri(*uri)->address, {{0, 3, 0xf0f0}}, 2s);
  ASSERT_TRUE(foreign.is_ok()) << foreign.status().to_string();
  // A hello with an impossible channel count.
  auto bad = toolkit::HelloTransportAccess::connect_with_hellos(
      **foreign_t, parse_uri(*uri)->address, {{0, 1, 0xbad}}, 2s);
  ASSERT_TRUE(bad.is_ok()) << bad.status().to_string();
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(incoming.info().status, MigrationStatus::kNone) << incoming.info().error;

  auto guest = small_guest();
  ASSERT_TRUE(guest);
  migrate_and_verify(*guest, incoming, *uri);
  EXPECT_TRUE(notices.any("channel_count 1")) << "the bad hello's drop is reported";
  ::close(noise);
  ::close(half);
}

TEST(Rearm, ChannelsASecondApartFormOneMigration) {
  IncomingMigration incoming(make_thread_guest_factory(), {});
  auto uri = incoming.start("tcp:127.0.0.1:0");
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  // A source whose channels come 1 s apart: open them by hand, then talk over channel 0 as a
  // source would, up to the layout's acknowledgement.
  auto t = create_transport("tcp");
  ASSERT_TRUE(t.is_ok());
  ChannelSet chans;
  for (uint32_t i = 0; i < 3; ++i) {
    if (i) std::this_thread::sleep_for(1s);
    auto c = toolkit::HelloTransportAccess::connect_with_hellos(**t, parse_uri(*uri)->address,
                                                                {{i, 3, 77}}, 2s);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    chans.push_back(std::move(c->front()));
  }
  Layout layout;
  layout.blocks.push_back({"ram", 4ull << 20, kSmallPage});
  std::vector<uint8_t> l = encode_layout(layout);
  TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(l.size()),
                        static_cast<uint32_t>(ControlType::kLayout), kLayoutPrecopyOnly, 0),
            l.data()};
  ASSERT_EQ(chans[0]->post(&f, 1), 1u);
  ASSERT_TRUE(chans[0]->flush());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (incoming.info().status != MigrationStatus::kActive &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  EXPECT_EQ(incoming.info().status, MigrationStatus::kActive) << incoming.info().error;
  chans.clear();
  EXPECT_EQ(incoming.wait(10s), MigrationStatus::kFailed);
}

// Starts a migration of `guest` to `uri` held to 8 MiB/s, lets it run a moment once active,
// then ends it from the source with `stop` (cancel, or shutdown: the source going away).
// Returns the source's final status.
MigrationStatus interrupt_slow_migration(Guest& guest, const std::string& uri,
                                         void (OutgoingMigration::*stop)()) {
  MigrationParameters slow;
  slow.max_bandwidth = 8ull << 20;
  OutgoingMigration out(guest, {}, slow);
  if (!out.start(uri).is_ok()) return MigrationStatus::kFailed;
  // The guest was prefilled: its 32 MiB take ~4 s at this rate, so the stop lands mid-precopy
  // even when this thread is starved for a while on a loaded host.
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (out.info().status != MigrationStatus::kActive &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(200ms);
  (out.*stop)();
  return out.wait(30s);
}

class RearmAfter : public ::testing::TestWithParam<std::string> {};

TEST_P(RearmAfter, CancelThenMigrateAgainCompletes) {
  IncomingMigration incoming(make_thread_guest_factory(), {});
  auto uri = incoming.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  auto guest = running_thread_guest(32ull << 20, /*prefill=*/true);
  ASSERT_TRUE(guest);
  EXPECT_EQ(interrupt_slow_migration(*guest, *uri, &OutgoingMigration::cancel),
            MigrationStatus::kCancelled);
  EXPECT_EQ(incoming.wait(30s), MigrationStatus::kCancelled) << incoming.info().error;
  ASSERT_TRUE(guest->running());
  migrate_and_verify(*guest, incoming, *uri);
}

TEST_P(RearmAfter, FailureThenMigrateAgainCompletes) {
  IncomingMigration incoming(make_thread_guest_factory(), {});
  auto uri = incoming.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  auto guest = running_thread_guest(32ull << 20, /*prefill=*/true);
  ASSERT_TRUE(guest);
  // The source goes away in the middle of precopy.
  EXPECT_EQ(interrupt_slow_migration(*guest, *uri, &OutgoingMigration::shutdown),
            MigrationStatus::kFailed);
  EXPECT_EQ(incoming.wait(30s), MigrationStatus::kFailed);
  EXPECT_NE(incoming.info().error.find("shutting down"), std::string::npos)
      << incoming.info().error;
  ASSERT_TRUE(guest->running());
  migrate_and_verify(*guest, incoming, *uri);
}

INSTANTIATE_TEST_SUITE_P(Transports, RearmAfter, ::testing::Values("tcp", "loopback"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
