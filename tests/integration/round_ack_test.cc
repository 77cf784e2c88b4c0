// The source must not drop a round's ack that arrives before it has seen every lane finish the
// round. A lane marks its round done right after posting the round end; if the source's
// control thread is descheduled between its "all lanes done?" check and its control poll, the
// round end can reach the destination and the ack come back in between. The source used to
// drop such an ack as impossible and then wait 120 s for it ("destination did not answer in
// time": 1 run in 5 of rdma postcopy-preempt 4K under TCG). A scripted destination here sends
// round 1's ack at once, long before round 1 ends, which makes that ordering certain.
#include <gtest/gtest.h>

#include <atomic>
#include <thread>

#include "dataplane/transport.h"
#include "tests/integration/migration_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;

class EarlyRoundAck : public ::testing::TestWithParam<std::string> {};

TEST_P(EarlyRoundAck, SourceKeepsAnAckThatCameBeforeItsLanesFinished) {
  WorkloadSpec spec;
  spec.vcpus = 1;
  spec.ram_bytes = 32ull << 20;
  spec.wss_fraction = 0.5;
  spec.rate = 100;
  auto guest = ThreadGuest::create(spec);
  ASSERT_TRUE(guest.is_ok());
  ASSERT_TRUE((*guest)->prefill().is_ok());  // 16 MiB of data pages: round 1 lasts ~2 s
  ASSERT_TRUE((*guest)->start().is_ok());
  // Pages land in buffers shaped like the source's blocks.
  std::vector<std::vector<uint8_t>> ram;
  std::vector<BlockLanding> blocks;
  for (RamBlock* b : (*guest)->ram()) {
    ram.emplace_back(b->size());
    blocks.push_back({ram.back().data(), b->size(), b->host_page_size()});
  }
  Landing landing(blocks), none;

  auto transport = create_transport(GetParam());
  ASSERT_TRUE(transport.is_ok());
  auto uri = (*transport)->listen(GetParam() == "tcp" ? "127.0.0.1:0"
                                                      : listen_uri("loopback").substr(9));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  MigrationParameters params;
  params.multifd_channels = 1;
  params.workers = 1;
  params.max_bandwidth = 8ull << 20;  // round 1 takes about 2 s: the ack comes well before
  OutgoingMigration outgoing(**guest, {}, params);
  ASSERT_TRUE(outgoing.start(*uri).is_ok());
  auto chans = (*transport)->accept(10s);
  ASSERT_TRUE(chans.is_ok()) << chans.status().to_string();
  Channel& control = *(*chans)[kControlChannel];
  Channel& bulk = *(*chans)[kFirstBulkChannel];
  control.set_landing(&none);
  bulk.set_landing(&landing);
  auto send = [&](ControlType t, uint32_t round) {
    TxFrame f{make_header(FrameType::kControl, 0, 0, 0, static_cast<uint32_t>(t), round, 0),
              nullptr};
    ASSERT_EQ(control.post(&f, 1), 1u);
    while (control.tx_pending() && control.error().is_ok()) {
      control.flush();
      control.poll_tx();
    }
  };
  RxFrame f[32];
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  bool layout = false;
  while (!layout && std::chrono::steady_clock::now() < deadline)
    for (size_t n = control.poll_rx(f, 1), i = 0; i < n; ++i)
      layout |= static_cast<ControlType>(f[i].hdr.flags) == ControlType::kLayout;
  ASSERT_TRUE(layout);
  send(ControlType::kLayoutAck, 0);
  send(ControlType::kRoundAck, 1);  // early: round 1 has only begun
  const auto acked_at = std::chrono::steady_clock::now();

  // Receive the bulk channel until round 1 ends; the source should then go on to round 2 at
  // once. It waited 120 s for the ack it had dropped.
  uint32_t last_round_end = 0;
  while (last_round_end < 2 && std::chrono::steady_clock::now() < deadline &&
         bulk.error().is_ok() && outgoing.info().status != MigrationStatus::kFailed) {
    for (size_t n = bulk.poll_rx(f, 32), i = 0; i < n; ++i)
      if (static_cast<FrameType>(f[i].hdr.type) == FrameType::kRoundEnd)
        last_round_end = f[i].hdr.round;
    control.poll_rx(f, 1);
    bulk.poll_tx();
    control.poll_tx();
  }
  const double waited = std::chrono::duration<double>(std::chrono::steady_clock::now() - acked_at).count();
  std::cout << "[ round 2  ] started " << waited << " s after the early ack of round 1\n";
  EXPECT_TRUE(bulk.error().is_ok()) << bulk.error().to_string();
  EXPECT_GE(last_round_end, 2u) << "the source never went past round 1: "
                                << outgoing.info().error;
  outgoing.cancel();
  outgoing.wait(10s);
  (*guest)->pause();
}

INSTANTIATE_TEST_SUITE_P(Transports, EarlyRoundAck, ::testing::Values("loopback", "tcp"),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
