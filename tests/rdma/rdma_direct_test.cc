// Direct placement on real verbs (rdma_channel.h, detail/grants.h): with the destination's
// memory announced (precopy, no postcopy armed) page payloads are RDMA-written straight to their
// place and announced in batches; without it, or with a staged landing (postcopy), every frame
// goes through the slots; and a placed frame that names a place outside the landing fails the
// receiving channel with a clear error.
#include <gtest/gtest.h>

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
                   size_t count) {
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
    got += rx.poll_rx(buf, 32);
  }
  return got;
}

TEST(RdmaDirect, PrecopyPagesArePlacedWithoutTheSlots) {
  auto p = connect_pair();
  ASSERT_TRUE(p);
  std::vector<uint8_t> src(kBlock), dst(kBlock, 0);
  for (size_t i = 0; i < src.size(); ++i) src[i] = static_cast<uint8_t>(i * 7 + i / 4096);
  ASSERT_TRUE(p->src_t.register_memory(src.data(), src.size()).is_ok());
  ASSERT_TRUE(p->dst_t.register_memory(dst.data(), dst.size()).is_ok());  // precopy only
  Landing landing({{dst.data(), kBlock, kFrame}});
  Channel& tx = *p->src[kFirstBulkChannel];
  Channel& rx = *p->dst[kFirstBulkChannel];
  rx.set_landing(&landing);
  const RdmaDirectCounters before = rdma_direct_counters();
  const size_t n = kBlock / kFrame;
  ASSERT_EQ(send_frames(tx, rx, src, 0, n), n) << rx.error().to_string() << tx.error().to_string();
  ASSERT_EQ(send_frames(tx, rx, src, 0, n), n) << rx.error().to_string() << tx.error().to_string();
  const RdmaDirectCounters after = rdma_direct_counters();
  EXPECT_EQ(after.grants - before.grants, 1u);  // one 64 MiB chunk holds the whole 8 MiB
  // The first frame granted the chunk; nearly every later one was placed directly.
  EXPECT_GE(after.placed_frames - before.placed_frames, n);
  EXPECT_EQ(dst, src);
}

TEST(RdmaDirect, NoDirectPlacementWithoutAnnouncedMemoryOrWithAStagedLanding) {
  auto p = connect_pair();
  ASSERT_TRUE(p);
  std::vector<uint8_t> src(kBlock, 0x5c), dst(kBlock, 0), staging(kFrame);
  ASSERT_TRUE(p->src_t.register_memory(src.data(), src.size()).is_ok());
  Landing landing({{dst.data(), kBlock, kFrame}});
  Channel& tx = *p->src[kFirstBulkChannel];
  Channel& rx = *p->dst[kFirstBulkChannel];
  rx.set_landing(&landing);
  const RdmaDirectCounters before = rdma_direct_counters();
  const size_t n = kBlock / kFrame;
  // Postcopy armed: the engine announces no guest RAM on the destination.
  ASSERT_EQ(send_frames(tx, rx, src, 0, n), n) << rx.error().to_string();
  // Announced, but the landing is staged (postcopy): nothing is granted either.
  ASSERT_TRUE(p->dst_t.register_memory(dst.data(), dst.size()).is_ok());
  Landing staged({{dst.data(), kBlock, kFrame}});
  staged.set_staging(staging.data());
  rx.set_landing(&staged);
  ASSERT_EQ(send_frames(tx, rx, src, 0, n), n) << rx.error().to_string();
  const RdmaDirectCounters after = rdma_direct_counters();
  EXPECT_EQ(after.grants, before.grants);
  EXPECT_EQ(after.placed_frames, before.placed_frames);
  EXPECT_EQ(dst, src);
}

TEST(RdmaDirect, PlacedFrameOutsideTheLandingFailsTheChannel) {
  auto p = connect_pair();
  ASSERT_TRUE(p);
  std::vector<uint8_t> src(kBlock, 0x11), dst(kBlock, 0);
  ASSERT_TRUE(p->src_t.register_memory(src.data(), src.size()).is_ok());
  ASSERT_TRUE(p->dst_t.register_memory(dst.data(), dst.size()).is_ok());
  Landing whole({{dst.data(), kBlock, kFrame}});
  Channel& tx = *p->src[kFirstBulkChannel];
  Channel& rx = *p->dst[kFirstBulkChannel];
  rx.set_landing(&whole);
  const size_t n = kBlock / kFrame;
  ASSERT_EQ(send_frames(tx, rx, src, 0, n), n) << rx.error().to_string();
  // The sender holds a grant for all 8 MiB; the receiver's landing now says the block is half
  // that, as if the sender named a place outside guest RAM. The payload can only have gone to
  // granted (registered) memory; the header is refused before the frame is reported.
  Landing half({{dst.data(), kBlock / 2, kFrame}});
  rx.set_landing(&half);
  const RdmaDirectCounters before = rdma_direct_counters();
  EXPECT_EQ(send_frames(tx, rx, src, kBlock * 3 / 4, 1), 0u);
  EXPECT_EQ(rdma_direct_counters().placed_frames, before.placed_frames);
  ASSERT_FALSE(rx.error().is_ok());
  const std::string m = rx.error().message();
  EXPECT_NE(m.find("lies outside the landing"), std::string::npos) << m;
  std::printf("[ message  ] %s\n", m.c_str());
}

}  // namespace
}  // namespace tern
