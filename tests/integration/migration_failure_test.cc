// Migrations that must fail or stop cleanly: cancel in the middle of precopy, a hostile
// source that sends a page outside guest RAM, a hostile destination that requests a page
// it should not. In every case the source guest keeps running and its memory stays intact.
#include <gtest/gtest.h>

#include <cstring>
#include <thread>

#include "dataplane/transport.h"
#include "tests/integration/migration_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;

WorkloadSpec small_spec() {
  WorkloadSpec spec;
  spec.vcpus = 2;
  spec.ram_bytes = 256ull << 20;
  spec.wss_fraction = 0.5;
  spec.rate = 2000;
  return spec;
}

class Failures : public ::testing::TestWithParam<std::string> {};

TEST_P(Failures, CancelInPrecopyLeavesSourceRunningAndIntact) {
  WorkloadSpec spec = small_spec();
  spec.wss_fraction = 1.0;
  spec.pattern = Pattern::kSequential;
  spec.rate = 0;
  auto guest = ThreadGuest::create(spec);
  ASSERT_TRUE(guest.is_ok()) << guest.status().to_string();
  // Fill memory first so that the migration has real bytes to move under its bandwidth cap.
  ASSERT_TRUE((*guest)->run_ops(spec.ram_bytes / kTargetPageSize / spec.vcpus).is_ok());
  ASSERT_TRUE((*guest)->start().is_ok());
  MigrationParameters params;
  params.max_bandwidth = 32ull << 20;  // slow enough to cancel in the middle
  IncomingMigration incoming(make_thread_guest_factory(), params);
  auto uri = incoming.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  OutgoingMigration outgoing(**guest, {}, params);
  ASSERT_TRUE(outgoing.start(*uri).is_ok());
  auto deadline = std::chrono::steady_clock::now() + 20s;
  while (outgoing.info().status != MigrationStatus::kActive &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(5ms);
  std::this_thread::sleep_for(300ms);
  MigrationInfo mid = outgoing.info();
  EXPECT_GT(mid.stats.transferred, 0u);
  EXPECT_GT(mid.stats.remaining, 0u);
  outgoing.cancel();
  EXPECT_EQ(outgoing.wait(30s), MigrationStatus::kCancelled) << outgoing.info().error;
  MigrationStatus d = incoming.wait(30s);
  EXPECT_TRUE(d == MigrationStatus::kCancelled || d == MigrationStatus::kFailed)
      << status_name(d);
  // The source guest is still running and its memory is intact.
  EXPECT_TRUE((*guest)->running());
  std::this_thread::sleep_for(100ms);
  (*guest)->pause();
  VerifyReport v = (*guest)->verify();
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
  EXPECT_GT(v.pages_checked, 0u);
}

// A hostile source on `incoming`: valid hellos and a layout of one 64 MiB block (with
// `layout_flags` in kLayout's round field); returns once the destination is active.
struct HostileSource {
  std::unique_ptr<Transport> transport;
  ChannelSet chans;
};
HostileSource open_hostile_source(IncomingMigration& incoming, const std::string& transport,
                                  uint32_t layout_flags) {
  HostileSource h;
  auto uri = incoming.start(listen_uri(transport));
  EXPECT_TRUE(uri.is_ok());
  if (!uri.is_ok()) return h;
  auto parsed = parse_uri(*uri);
  auto t = create_transport(parsed->transport);
  EXPECT_TRUE(t.is_ok());
  if (!t.is_ok()) return h;
  h.transport = std::move(*t);
  auto chans = h.transport->connect(parsed->address, 3, 42, 5s);
  EXPECT_TRUE(chans.is_ok()) << chans.status().to_string();
  if (!chans.is_ok()) return h;
  h.chans = std::move(*chans);
  Layout layout;
  layout.blocks.push_back({"ram", 64ull << 20, kSmallPage});
  std::vector<uint8_t> l = encode_layout(layout);
  TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(l.size()),
                        static_cast<uint32_t>(ControlType::kLayout), layout_flags, 0),
            l.data()};
  EXPECT_EQ(h.chans[0]->post(&f, 1), 1u);
  EXPECT_TRUE(h.chans[0]->flush());
  auto deadline = std::chrono::steady_clock::now() + 10s;
  while (incoming.info().status != MigrationStatus::kActive &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  EXPECT_EQ(incoming.info().status, MigrationStatus::kActive);
  return h;
}

// A hostile source: valid hello and layout, then a page frame beyond the end of the block.
TEST_P(Failures, HostilePageOutsideGuestRamFailsDestinationWithoutWriting) {
  // Outlives the channels: a loopback channel reads unread page payloads when destroyed.
  std::vector<uint8_t> page(4096, 0xAB);
  IncomingMigration incoming(make_thread_guest_factory(), {});
  HostileSource src = open_hostile_source(incoming, GetParam(), 0);
  ASSERT_EQ(src.chans.size(), 3u);
  Channel& bulk = *src.chans[2];

  TxFrame bad{make_header(FrameType::kPage, 0, 64ull << 20, 4096, kFlagHostPageEnd, 1, 2),
              page.data()};
  ASSERT_EQ(bulk.post(&bad, 1), 1u);
  bulk.flush();
  EXPECT_EQ(incoming.wait(20s), MigrationStatus::kFailed);
  MigrationInfo di = incoming.info();
  EXPECT_NE(di.error.find("protocol"), std::string::npos) << di.error;
  std::cout << "[ error    ] " << di.error << "\n";
  // Nothing was written: the destination guest's RAM is untouched.
  Guest* g = incoming.guest();
  ASSERT_NE(g, nullptr);
  const RamBlock* rb = g->ram()[0];
  for (uint64_t off = 0; off < rb->size(); off += 4096) ASSERT_EQ(rb->base()[off], 0) << off;
}

// A source that announced a precopy-only migration (the destination may then have registered
// guest RAM for remote writes, pinning it) cannot switch to postcopy.
TEST_P(Failures, PostcopyStartAfterAPrecopyOnlyLayoutIsRefused) {
  IncomingMigration incoming(make_thread_guest_factory(), {});
  HostileSource src = open_hostile_source(incoming, GetParam(), kLayoutPrecopyOnly);
  ASSERT_EQ(src.chans.size(), 3u);
  std::vector<uint8_t> empty_discard(8, 0);
  TxFrame f{make_header(FrameType::kControl, 0, 0, 8,
                        static_cast<uint32_t>(ControlType::kPostcopyStart), 0, 0),
            empty_discard.data()};
  ASSERT_EQ(src.chans[0]->post(&f, 1), 1u);
  ASSERT_TRUE(src.chans[0]->flush());
  EXPECT_EQ(incoming.wait(20s), MigrationStatus::kFailed);
  const std::string error = incoming.info().error;
  EXPECT_NE(error.find("precopy-only"), std::string::npos) << error;
  std::cout << "[ error    ] " << error << "\n";
}

// A hostile destination: accepts, acknowledges the layout, then requests a page in precopy.
TEST_P(Failures, HostileRequestFailsSourceWhichKeepsRunning) {
  auto guest = ThreadGuest::create(small_spec());
  ASSERT_TRUE(guest.is_ok());
  ASSERT_TRUE((*guest)->start().is_ok());
  auto transport = create_transport(GetParam());
  ASSERT_TRUE(transport.is_ok());
  auto uri = (*transport)->listen(GetParam() == "tcp" ? "127.0.0.1:0"
                                                      : listen_uri("loopback").substr(9));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  MigrationParameters params;
  params.max_bandwidth = 16ull << 20;
  OutgoingMigration outgoing(**guest, {}, params);
  ASSERT_TRUE(outgoing.start(*uri).is_ok());
  auto chans = (*transport)->accept(10s);
  ASSERT_TRUE(chans.is_ok()) << chans.status().to_string();
  Landing none;
  for (auto& c : *chans) c->set_landing(&none);
  TxFrame ack{make_header(FrameType::kControl, 0, 0, 0,
                          static_cast<uint32_t>(ControlType::kLayoutAck), 0, 0),
              nullptr};
  ASSERT_EQ((*chans)[0]->post(&ack, 1), 1u);
  (*chans)[0]->flush();
  std::this_thread::sleep_for(100ms);
  TxFrame req{make_header(FrameType::kRequest, 7, 0, 0, 0, 0, 1), nullptr};
  ASSERT_EQ((*chans)[1]->post(&req, 1), 1u);
  (*chans)[1]->flush();
  EXPECT_EQ(outgoing.wait(20s), MigrationStatus::kFailed);
  std::cout << "[ error    ] " << outgoing.info().error << "\n";
  EXPECT_NE(outgoing.info().error.find("request"), std::string::npos) << outgoing.info().error;
  EXPECT_TRUE((*guest)->running());
  (*guest)->pause();
  VerifyReport v = (*guest)->verify();
  EXPECT_EQ(v.mismatches, 0u) << v.first_mismatch;
}

INSTANTIATE_TEST_SUITE_P(Transports, Failures, ::testing::Values("loopback", "tcp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
