// Credits on real verbs: frames that a flush leaves queued because the peer's window is full
// go out once credits come back, when the sending side only keeps polling for receives (as the
// destination's urgent channel does: its fault poller flushes requests only when new faults
// come). Before the fix they waited for the next flush, that is for the next fault.
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

struct Pair {
  std::unique_ptr<RdmaChannel> a, b;
};

Pair connect_pair(DeviceTable& da, DeviceTable& db) {
  auto l = Listener::listen(rdma_ip(), "0", RdmaChannel::kShape);
  EXPECT_TRUE(l.is_ok()) << l.status().to_string();
  if (!l.is_ok()) return {};
  auto accepted = std::async(std::launch::async, [&] {
    std::vector<std::unique_ptr<Connection>> got;
    for (int i = 0; i < 500 && got.empty(); ++i)
      if (!(*l)->poll(20, db, got).is_ok()) break;
    return got.empty() ? nullptr : std::move(got.front());
  });
  auto c = connect(rdma_ip(), std::to_string((*l)->port()), RdmaChannel::kShape, da, 10s);
  EXPECT_TRUE(c.is_ok()) << c.status().to_string();
  std::unique_ptr<Connection> d = accepted.get();
  if (!c.is_ok() || !d) return {};
  Pair p{std::make_unique<RdmaChannel>(std::move(*c), nullptr),
         std::make_unique<RdmaChannel>(std::move(d), nullptr)};
  p.a->set_index(1);
  p.b->set_index(1);
  return p;
}

TEST(RdmaCredits, QueuedFramesLeaveWhenCreditsReturnWithoutAnotherFlush) {
  DeviceTable da, db;
  Pair p = connect_pair(da, db);
  ASSERT_TRUE(p.a && p.b);
  RdmaChannel& src = *p.a;  // plays the destination's urgent channel: sends requests
  RdmaChannel& dst = *p.b;  // plays the source: reads them

  constexpr size_t kFrames = 200;  // more than a window (127 slots)
  std::vector<TxFrame> reqs;
  for (size_t i = 0; i < kFrames; ++i)
    reqs.push_back({make_header(FrameType::kRequest, 0, i * 4096, 0, 0, 0, 1), nullptr});
  ASSERT_EQ(src.post(reqs.data(), kFrames), kFrames);
  for (int i = 0; i < 4; ++i) ASSERT_TRUE(src.flush());  // once per "fault", then no more
  EXPECT_EQ(src.tx_pending(), kFrames - (RdmaChannel::kSlots - 1)) << "the window is full";

  size_t got = 0;
  RxFrame rx[32];
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  while (got < kFrames && std::chrono::steady_clock::now() < deadline) {
    for (size_t k = dst.poll_rx(rx, 32), i = 0; i < k; ++i) {
      EXPECT_EQ(rx[i].hdr.offset, got * 4096) << "in order, none lost";
      ++got;
    }
    src.poll_rx(rx, 32);  // the sender only polls for receives: no flush()
    src.poll_tx();
    ASSERT_TRUE(src.error().is_ok()) << src.error().to_string();
    ASSERT_TRUE(dst.error().is_ok()) << dst.error().to_string();
    std::this_thread::sleep_for(100us);
  }
  EXPECT_EQ(got, kFrames) << "frames left queued behind the full window never went out";
  EXPECT_EQ(src.tx_pending(), 0u);
}

}  // namespace
}  // namespace tern::rdma
