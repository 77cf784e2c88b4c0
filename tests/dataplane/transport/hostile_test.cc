// Conformance: a hostile or corrupt peer fails the receiving channel with a protocol error
// naming the bad field, and writes nothing; plus a throughput sanity check across threads.
// One body per test, run against every transport in harness.h.
#include <gtest/gtest.h>
#include <poll.h>

#include <cstdio>
#include <cstring>
#include <thread>

#include "tests/dataplane/transport/harness.h"

namespace tern::testing {
namespace {

constexpr size_t kBlock = 64 << 10;  // one host page of 64 KiB

struct Hostile {
  const char* name;
  FrameHeader hdr;
  const char* expect;  // in the error message
};

FrameHeader bad_magic() {
  FrameHeader h = make_header(FrameType::kPage, 0, 0, kTargetPageSize, 0, 0, 2);
  h.magic = 0x1234;
  return h;
}
FrameHeader bad_type() {
  FrameHeader h = make_header(FrameType::kPage, 0, 0, kTargetPageSize, 0, 0, 2);
  h.type = 42;
  return h;
}

std::vector<Hostile> hostile_frames() {
  return {
      {"crosses_block_end", make_header(FrameType::kPage, 0, kBlock - 4096, 8192, 0, 0, 2),
       "offset"},
      {"beyond_block", make_header(FrameType::kPage, 0, kBlock, 4096, 0, 0, 2), "offset"},
      {"unknown_block", make_header(FrameType::kPage, 7, 0, 4096, 0, 0, 2), "block 7"},
      {"unaligned", make_header(FrameType::kPage, 0, 100, 4096, 0, 0, 2), "offset 100"},
      {"bad_magic", bad_magic(), "magic"},
      {"bad_type", bad_type(), "type"},
      {"too_long", make_header(FrameType::kPage, 0, 0, kHugePageBytes + 4096, 0, 0, 2),
       "length"},
      {"wrong_channel", make_header(FrameType::kPage, 0, 0, 4096, 0, 0, 1), "channel 1"},
  };
}

class HostilePeer : public ::testing::TestWithParam<std::tuple<std::string, int>> {};

TEST_P(HostilePeer, FailsTheChannelAndWritesNothing) {
  const auto& [transport, which] = GetParam();
  const Hostile bad = hostile_frames()[which];
  // Payloads and landing outlive the channels (declared first): frames the failed receiver
  // never consumed stay referenced until the sending channel is destroyed.
  std::vector<uint8_t> evil(kHugePageBytes + 8192, 0xEE);
  std::vector<uint8_t> good(4096, 0x77);
  Guarded dst(kBlock, 0);
  Landing landing({{dst.data(), kBlock, static_cast<uint32_t>(kBlock)}});
  Connected c = connect_pair(harness(transport));
  ASSERT_EQ(c.src.size(), 3u);
  Channel& tx = *c.src[2];
  Channel& rx = *c.dst[2];
  rx.set_landing(&landing);
  // One good frame first: it lands; the hostile one that follows must not.
  TxFrame frames[] = {{make_header(FrameType::kPage, 0, 0, 4096, 0, 0, 2), good.data()},
                      {bad.hdr, evil.data()},
                      {make_header(FrameType::kPage, 0, 4096, 4096, 0, 0, 2), good.data()}};
  ASSERT_EQ(tx.post(frames, 3), 3u);
  ASSERT_TRUE(tx.flush());
  std::vector<Received> got;
  poll_until_error(rx, 3s, &got);
  ASSERT_FALSE(rx.error().is_ok()) << bad.name;
  EXPECT_EQ(rx.error().code(), Code::kProtocol) << rx.error().to_string();
  EXPECT_NE(rx.error().message().find(bad.expect), std::string::npos)
      << bad.name << ": " << rx.error().to_string();
  EXPECT_EQ(got.size(), 1u);
  EXPECT_TRUE(std::all_of(dst.data(), dst.data() + 4096, [](uint8_t v) { return v == 0x77; }));
  EXPECT_TRUE(std::all_of(dst.data() + 4096, dst.data() + kBlock, [](uint8_t v) { return !v; }))
      << bad.name << ": hostile payload written into the block";
  EXPECT_TRUE(dst.guards_intact()) << bad.name << ": written outside the block";
  RxFrame f;
  EXPECT_EQ(rx.poll_rx(&f, 1), 0u);
  EXPECT_EQ(rx.error().code(), Code::kProtocol);  // sticky
}

INSTANTIATE_TEST_SUITE_P(
    Transports, HostilePeer,
    ::testing::Combine(::testing::ValuesIn(harness_names()),
                       ::testing::Range(0, static_cast<int>(hostile_frames().size()))),
    [](const auto& info) {
      return std::get<0>(info.param) + "_" + hostile_frames()[std::get<1>(info.param)].name;
    });

class Throughput : public ::testing::TestWithParam<std::string> {};

// A few hundred MiB of 64 KiB page frames from a sender thread to a receiver thread, each
// blocking on nothing but its own bounded waits: checks delivery, order and a sane rate.
TEST_P(Throughput, MovesHundredsOfMiBAcrossThreads) {
  constexpr size_t kFrame = 64 << 10, kBlock = 8 << 20;
  constexpr uint64_t kTotal = 256ull << 20, kFrames = kTotal / kFrame;
  std::vector<uint8_t> src(kBlock), dst(kBlock);  // outlive the channels
  fill_pattern(src.data(), kBlock, 9);
  Landing landing({{dst.data(), kBlock, static_cast<uint32_t>(kFrame)}});
  Connected c = connect_pair(harness(GetParam()));
  ASSERT_EQ(c.src.size(), 3u);
  Channel& tx = *c.src[2];
  Channel& rx = *c.dst[2];
  rx.set_landing(&landing);
  const auto t0 = std::chrono::steady_clock::now();
  const auto deadline = t0 + 120s;  // a hang guard: TSan on a loaded host took over 20 s
  std::thread sender([&] {
    TxFrame burst[16];
    uint64_t posted = 0, done = 0;
    while (done < kFrames && std::chrono::steady_clock::now() < deadline) {
      size_t n = std::min<uint64_t>(16, kFrames - posted);
      for (size_t k = 0; k < n; ++k) {
        uint64_t off = ((posted + k) * kFrame) % kBlock;
        burst[k] = {make_header(FrameType::kPage, 0, off, kFrame, 0,
                                static_cast<uint32_t>(posted + k), 2),
                    src.data() + off};
      }
      size_t accepted = tx.post(burst, n);
      posted += accepted;
      if (!tx.flush()) return;
      size_t completed = tx.poll_tx();
      done += completed;
      if (accepted == 0 && completed == 0) std::this_thread::sleep_for(20us);
    }
  });
  RxFrame buf[32];
  uint64_t received = 0;
  bool in_order = true;
  while (received < kFrames && rx.error().is_ok() && std::chrono::steady_clock::now() < deadline) {
    size_t n = rx.poll_rx(buf, 32);
    for (size_t i = 0; i < n; ++i) in_order &= buf[i].hdr.round == received++;
    if (n == 0) {
      pollfd pfd{rx.wait_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 5);
    }
  }
  const double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  sender.join();
  ASSERT_TRUE(rx.error().is_ok()) << rx.error().to_string();
  EXPECT_EQ(received, kFrames);
  EXPECT_TRUE(in_order);
  EXPECT_EQ(std::memcmp(src.data(), dst.data(), kBlock), 0);
  std::printf("%s: %.0f MiB in %.3f s = %.2f GB/s\n", GetParam().c_str(), kTotal / 1048576.0,
              secs, kTotal / secs / 1e9);
}

INSTANTIATE_TEST_SUITE_P(Transports, Throughput, ::testing::ValuesIn(harness_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern::testing
