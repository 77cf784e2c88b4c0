// Direct placement on real verbs (rdma_channel.h, detail/grants.h): with the destination's
// memory announced (precopy, no postcopy armed) page payloads are RDMA-written straight to their
// place and announced in batches; without it, or with a staged landing (postcopy), every frame
// goes through the slots; and a placed frame that names a place outside the landing fails the
// receiving channel with a clear error.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdlib>
#include <future>
#include <thread>

#include "rdma/rdma_transport.h"

namespace tern {
namespace {

using namespace std::chrono_literals;

constexpr uint32_t kFrame = 64 << 10;
constexpr size_t kBlock = 8 << 20;

struct Pair {
  RdmaTransport src_t, dst_t;
  ChannelSet src, dst;
};

std::unique_ptr<Pair> connect_pair() {
  auto p = std::make_unique<Pair>();
  const char* ip = std::getenv("TERN_RDMA_IP");
  auto uri = p->dst_t.listen(std::string(ip && *ip ? ip : "127.0.0.1") + ":0");
  EXPECT_TRUE(uri.is_ok()) << uri.status().to_string();
  if (!uri.is_ok()) return nullptr;
  auto acc = std::async(std::launch::async, [&] { return p->dst_t.accept(10s); });
  auto con = p->src_t.connect(parse_uri(*uri)->address, 3, 7, 10s);
  auto a = acc.get();
  EXPECT_TRUE(con.is_ok() && a.is_ok());
  if (!con.is_ok() || !a.is_ok()) return nullptr;
  p->src = std::move(*con);
  p->dst = std::move(*a);
  return p;
}

// Sends `count` 64 KiB page frames of src at offsets first, first + 64 KiB, ... and receives
// them on rx; returns how many arrived (stops early when either side fails).
size_t send_frames(Channel& tx, Channel& rx, const std::vector<uint8_t>& src, uint64_t first,
                   size_t count, size_t rx_max = 32) {
  size_t posted = 0, got = 0;
  RxFrame buf[32];
  const auto deadline = std::chrono::steady_clock::now() + 60s;
  while (got < count && tx.error().is_ok() && rx.error().is_ok() &&
         std::chrono::steady_clock::now() < deadline) {
    if (posted < count) {
      const uint64_t off = first + posted * kFrame;
      TxFrame f{make_header(FrameType::kPage, 0, off, kFrame, kFlagHostPageEnd, 0,
                            kFirstBulkChannel),
                src.data() + off % src.size()};
      posted += tx.post(&f, 1);
    }
    tx.flush();
    tx.poll_tx();
    got += rx.poll_rx(buf, rx_max);
  }
  return got;
}

// A connected pair, 8 MiB of source memory announced, 8 MiB of destination memory (announced by
// each test when it plays a precopy-only destination) under a direct landing on the bulk channel.
class RdmaDirect : public ::testing::Test {
 protected:
  void SetUp() override {
    p_ = connect_pair();
    ASSERT_TRUE(p_);
    for (size_t i = 0; i < src_.size(); ++i) src_[i] = static_cast<uint8_t>(i * 7 + i / 4096);
    ASSERT_TRUE(p_->src_t.register_memory(src_.data(), src_.size()).is_ok());
    rx().set_landing(&landing_);
  }
  Channel& tx() { return *p_->src[kFirstBulkChannel]; }
  Channel& rx() { return *p_->dst[kFirstBulkChannel]; }
  bool announce_dst() { return p_->dst_t.register_memory(dst_.data(), dst_.size()).is_ok(); }
  size_t send(uint64_t first, size_t count, size_t rx_max = 32) {
    return send_frames(tx(), rx(), src_, first, count, rx_max);
  }
  std::string errors() { return rx().error().to_string() + " / " + tx().error().to_string(); }

  static constexpr size_t kFrames = kBlock / kFrame;
  std::unique_ptr<Pair> p_;
  std::vector<uint8_t> src_ = std::vector<uint8_t>(kBlock), dst_ = std::vector<uint8_t>(kBlock, 0);
  Landing landing_{{{dst_.data(), kBlock, kFrame}}};
};

TEST_F(RdmaDirect, PrecopyPagesArePlacedWithoutTheSlots) {
  ASSERT_TRUE(announce_dst());  // precopy only
  const RdmaDirectCounters before = rdma_direct_counters();
  ASSERT_EQ(send(0, kFrames), kFrames) << errors();
  std::fill(dst_.begin(), dst_.end(), 0);
  // Again, taken 3 frames per poll_rx (as a bulk receiver takes 2 while requests are
  // outstanding): a notification's headers are reported across calls, none twice or lost.
  ASSERT_EQ(send(0, kFrames, 3), kFrames) << errors();
  const RdmaDirectCounters after = rdma_direct_counters();
  EXPECT_EQ(after.grants - before.grants, 1u);  // one 64 MiB chunk holds the whole 8 MiB
  // The first frame granted the chunk; nearly every later one was placed directly.
  EXPECT_GE(after.placed_frames - before.placed_frames, kFrames);
  EXPECT_EQ(dst_, src_);
}

TEST_F(RdmaDirect, NoDirectPlacementWithoutAnnouncedMemoryOrWithAStagedLanding) {
  const RdmaDirectCounters before = rdma_direct_counters();
  // Postcopy armed: the engine announces no guest RAM on the destination.
  ASSERT_EQ(send(0, kFrames), kFrames) << errors();
  // Announced, but the landing is staged (postcopy): nothing is granted either.
  ASSERT_TRUE(announce_dst());
  std::vector<uint8_t> staging(kFrame);
  Landing staged({{dst_.data(), kBlock, kFrame}});
  staged.set_staging(staging.data());
  rx().set_landing(&staged);
  ASSERT_EQ(send(0, kFrames), kFrames) << errors();
  const RdmaDirectCounters after = rdma_direct_counters();
  EXPECT_EQ(after.grants, before.grants);
  EXPECT_EQ(after.placed_frames, before.placed_frames);
  EXPECT_EQ(dst_, src_);
}

TEST_F(RdmaDirect, ReleasedMemoryRefusesThePeersWrites) {
  ASSERT_TRUE(announce_dst());
  ASSERT_EQ(send(0, kFrames), kFrames) << errors();
  // As the destination engine does before the guest runs: the sender still holds its grant,
  // but the device now refuses writes with it.
  p_->dst_t.release_memory();
  EXPECT_EQ(send(0, 1), 0u);
  for (int i = 0; i < 5000 && tx().error().is_ok(); ++i) {
    tx().poll_tx();
    std::this_thread::sleep_for(1ms);
  }
  ASSERT_FALSE(tx().error().is_ok());
  const std::string m = tx().error().message();
  EXPECT_NE(m.find("RDMA_WRITE"), std::string::npos) << m;
  EXPECT_NE(m.find("remote access error"), std::string::npos) << m;
  std::printf("[ message  ] %s\n", m.c_str());
}

TEST_F(RdmaDirect, PlacedFrameOutsideTheLandingFailsTheChannel) {
  ASSERT_TRUE(announce_dst());
  ASSERT_EQ(send(0, kFrames), kFrames) << errors();
  // The sender holds a grant for all 8 MiB; the receiver's landing now says the block is half
  // that, as if the sender named a place outside guest RAM. The payload can only have gone to
  // granted (registered) memory; the header is refused before the frame is reported.
  Landing half({{dst_.data(), kBlock / 2, kFrame}});
  rx().set_landing(&half);
  const RdmaDirectCounters before = rdma_direct_counters();
  EXPECT_EQ(send(kBlock * 3 / 4, 1), 0u);
  EXPECT_EQ(rdma_direct_counters().placed_frames, before.placed_frames);
  ASSERT_FALSE(rx().error().is_ok());
  const std::string m = rx().error().message();
  EXPECT_NE(m.find("lies outside the landing"), std::string::npos) << m;
  std::printf("[ message  ] %s\n", m.c_str());
}

}  // namespace
}  // namespace tern
