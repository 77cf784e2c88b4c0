// A hostile source against a real destination engine over rdma, on the direct-placement path:
// it announces a precopy-only migration, gets a grant for the first 64 MiB chunk of guest RAM
// by sending one honest page, then forges a grant entry in its own connection's grant table so
// that its channel writes a payload into the granted chunk (all it can reach) and announces the
// frame as lying beyond the end of guest RAM. The destination must fail the migration with an
// error naming the frame, not record the page.
#include <gtest/gtest.h>

#include <chrono>
#include <iostream>
#include <thread>

#include "dataplane/migration.h"
#include "dataplane/toolkit/hello.h"
#include "rdma/rdma_channel.h"
#include "rdma/rdma_transport.h"
#include "rdma/verbs_shim.h"
#include "tests/integration/migration_helpers.h"

namespace tern {
namespace {

using namespace std::chrono_literals;
using namespace testing_support;

TEST(RdmaDirectMigration, PlacedFrameBeyondGuestRamFailsTheMigration) {
  constexpr uint64_t kRam = 64ull << 20;
  std::vector<uint8_t> page(64 << 10, 0xAB);
  IncomingMigration incoming(make_thread_guest_factory(), {});
  auto uri = incoming.start(listen_uri("rdma"));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  auto parsed = parse_uri(*uri);
  const auto colon = parsed->address.rfind(':');
  const std::string host = parsed->address.substr(0, colon), port = parsed->address.substr(colon + 1);

  // The source's three channels, built by hand so that the test keeps each connection.
  rdma::DeviceTable devices;
  auto memory = std::make_shared<rdma::MemoryMap>();
  std::vector<std::unique_ptr<rdma::RdmaChannel>> ch;
  rdma::Connection* bulk_conn = nullptr;
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  for (const HelloPayload& h : tern::toolkit::standard_hellos(3, 42)) {
    auto c = rdma::connect(host, port, rdma::RdmaChannel::kShape, devices, 10s);
    ASSERT_TRUE(c.is_ok()) << c.status().to_string();
    if (h.channel_index == kFirstBulkChannel) bulk_conn = c->get();
    ch.push_back(std::make_unique<rdma::RdmaChannel>(std::move(*c), memory));
    ASSERT_TRUE(tern::toolkit::send_hello(*ch.back(), h, deadline).is_ok());
  }
  auto pd = devices.first();
  ASSERT_TRUE(pd.is_ok());
  memory->add(page.data(), page.size(), [pd = *pd](void* a, size_t n) {
    return pd->register_region(a, n, false);
  });
  Channel& control = *ch[kControlChannel];
  Channel& bulk = *ch[kFirstBulkChannel];

  Layout layout;
  layout.blocks.push_back({"ram", kRam, kSmallPage});
  std::vector<uint8_t> l = encode_layout(layout);
  TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(l.size()),
                        static_cast<uint32_t>(ControlType::kLayout), kLayoutPrecopyOnly, 0),
            l.data()};
  ASSERT_EQ(control.post(&f, 1), 1u);
  ASSERT_TRUE(control.flush());
  while (incoming.info().status != MigrationStatus::kActive && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(2ms);
  ASSERT_EQ(incoming.info().status, MigrationStatus::kActive);

  // An honest page through the slots: the destination registers chunk 0 and grants it.
  const RdmaDirectCounters before = rdma_direct_counters();
  TxFrame honest{make_header(FrameType::kPage, 0, 0, 4096, kFlagHostPageEnd, 1, kFirstBulkChannel),
                 page.data()};
  ASSERT_EQ(bulk.post(&honest, 1), 1u);
  bulk.flush();
  const volatile rdma::detail::GrantEntry* table = bulk_conn->grant_table();
  while (table[0].seq != 1 && std::chrono::steady_clock::now() < deadline) {
    bulk.poll_tx();
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(table[0].seq, 1u) << "no grant arrived";
  EXPECT_EQ(rdma_direct_counters().grants, before.grants + 1);
  EXPECT_EQ(table[0].length, kRam);  // the chunk, clipped to guest RAM

  // The forgery: a grant "for" offset kRam (beyond guest RAM) pointing at granted memory.
  auto* forged = const_cast<rdma::detail::GrantEntry*>(
      reinterpret_cast<const volatile rdma::detail::GrantEntry*>(table) + 1);
  forged->addr = table[0].addr;
  forged->offset = kRam;
  forged->length = 64 << 10;
  forged->rkey = table[0].rkey;
  forged->block = 0;
  forged->seq = 2;
  TxFrame bad{make_header(FrameType::kPage, 0, kRam, 4096, kFlagHostPageEnd, 1, kFirstBulkChannel),
              page.data()};
  ASSERT_EQ(bulk.post(&bad, 1), 1u);
  bulk.flush();
  EXPECT_EQ(incoming.wait(20s), MigrationStatus::kFailed);
  const std::string error = incoming.info().error;
  EXPECT_NE(error.find("offset " + std::to_string(kRam)), std::string::npos) << error;
  EXPECT_NE(error.find("lies outside the landing"), std::string::npos) << error;
  EXPECT_EQ(rdma_direct_counters().placed_frames, before.placed_frames);  // never reported
  std::cout << "[ error    ] " << error << "\n";
}

}  // namespace
}  // namespace tern
