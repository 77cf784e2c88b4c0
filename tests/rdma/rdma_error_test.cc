// A real error completion fails the channel with a message naming the QP, the opcode and the
// status: the source writes with a wrong rkey and the device refuses it (remote access error).
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>
#include <thread>

#include "rdma/rdma_channel.h"
#include "rdma/verbs_shim.h"

namespace tern::rdma {
namespace {

using namespace std::chrono_literals;

std::string rdma_ip() {
  const char* ip = std::getenv("TERN_RDMA_IP");
  return ip && *ip ? ip : "127.0.0.1";
}

TEST(RdmaErrors, ErrorCompletionNamesQpOpcodeAndStatus) {
  auto l = Listener::listen(rdma_ip(), "0", RdmaChannel::kShape);
  ASSERT_TRUE(l.is_ok()) << l.status().to_string();
  DeviceTable dst_devices, src_devices;
  auto accepted = std::async(std::launch::async, [&] {
    std::vector<std::unique_ptr<Connection>> got;
    for (int i = 0; i < 250 && got.empty(); ++i)
      if (!(*l)->poll(20, dst_devices, got).is_ok()) break;
    return got.empty() ? nullptr : std::move(got.front());
  });
  auto c = connect(rdma_ip(), std::to_string((*l)->port()), RdmaChannel::kShape, src_devices, 5s);
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  std::unique_ptr<Connection> d = accepted.get();
  ASSERT_NE(d, nullptr);
  RingInfo bad = (*c)->peer();
  bad.ring_rkey ^= 0x5a5a5a;
  (*c)->override_peer(bad);
  RdmaChannel tx(std::move(*c), nullptr), rx(std::move(d), nullptr);
  tx.set_index(2);
  rx.set_index(2);

  std::vector<uint8_t> page(64 << 10, 0x42);  // too big for inline: an RDMA WRITE WITH IMM
  TxFrame f{make_header(FrameType::kPage, 0, 0, 64 << 10, 0, 0, 2), page.data()};
  ASSERT_EQ(tx.post(&f, 1), 1u);
  ASSERT_TRUE(tx.flush());
  for (int i = 0; i < 5000 && tx.error().is_ok(); ++i) {
    tx.poll_tx();
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_FALSE(tx.error().is_ok()) << "the bad write never completed in error";
  const std::string m = tx.error().message();
  EXPECT_NE(m.find("QP 0x"), std::string::npos) << m;
  EXPECT_NE(m.find("RDMA_WRITE_WITH_IMM"), std::string::npos) << m;
  EXPECT_NE(m.find("status"), std::string::npos) << m;
  std::printf("[ message  ] %s\n", m.c_str());
  EXPECT_FALSE(tx.flush());  // sticky
}

}  // namespace
}  // namespace tern::rdma
