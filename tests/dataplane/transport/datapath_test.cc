// Conformance, data tier: page landing (direct and staged), control frames, ordering,
// back-pressure, poll_tx accounting, hostile frames, throughput. One body per test, run
// against every transport in harness.h.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <poll.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <string>
#include <thread>

#include "tests/dataplane/transport/harness.h"

namespace tern::testing {
namespace {

class Datapath : public ::testing::TestWithParam<std::string> {
 protected:
  void SetUp() override {
    c_ = connect_pair(harness(GetParam()));
    ASSERT_EQ(c_.src.size(), 3u);
    ASSERT_EQ(c_.dst.size(), 3u);
  }
  Channel& tx() { return *c_.src[kFirstBulkChannel]; }
  Channel& rx() { return *c_.dst[kFirstBulkChannel]; }
  static FrameHeader page(uint64_t offset, uint32_t len, uint32_t flags = 0, uint32_t round = 0) {
    return make_header(FrameType::kPage, 0, offset, len, flags, round, kFirstBulkChannel);
  }
  Connected c_;
};

TEST_P(Datapath, PagesLandAtTheLandingAddress) {
  constexpr size_t kBlock = 1 << 20, kHostPage = 64 << 10;
  Guarded dst(kBlock, 0);
  Landing landing({{dst.data(), kBlock, kHostPage}});
  rx().set_landing(&landing);
  std::vector<uint8_t> src(kBlock);
  std::vector<TxFrame> frames;
  // Mixed sizes: 4 KiB pages and whole 64 KiB host pages, every target page once.
  for (uint64_t off = 0; off < kBlock;) {
    uint32_t len = (off / kHostPage) % 2 ? kHostPage : kTargetPageSize;
    fill_pattern(src.data() + off, len, off);
    frames.push_back({page(off, len, (off + len) % kHostPage ? 0 : kFlagHostPageEnd),
                      src.data() + off});
    off += len;
  }
  auto got = transfer(tx(), rx(), frames);
  ASSERT_TRUE(rx().error().is_ok()) << rx().error().to_string();
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < got.size(); ++i) {
    EXPECT_EQ(got[i].hdr.offset, frames[i].hdr.offset);
    EXPECT_EQ(got[i].data, dst.data() + frames[i].hdr.offset);
  }
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), kBlock), 0);
  EXPECT_TRUE(dst.guards_intact());
}

// A block whose RAM is a memfd (a VMM's) takes its pages through the file (Landing::copy's
// pwrite; tcp reads them through its buffer): single pages and page runs land there, at the
// address the frame reports. With a descriptor that takes no writes, the same pages are stored
// through the mapping instead.
TEST_P(Datapath, PagesLandInTheBlocksFile) {
  constexpr size_t kBlock = 1 << 20;
  for (bool writable : {true, false}) {
    SCOPED_TRACE(writable ? "writable file" : "read-only descriptor: stores");
    const int fd = memfd_create("datapath-file", MFD_CLOEXEC);
    ASSERT_GE(fd, 0);
    ASSERT_EQ(ftruncate(fd, kBlock), 0);
    auto* ram = static_cast<uint8_t*>(
        mmap(nullptr, kBlock, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0));
    ASSERT_NE(ram, MAP_FAILED);
    const int ro = open(("/proc/self/fd/" + std::to_string(fd)).c_str(), O_RDONLY | O_CLOEXEC);
    ASSERT_GE(ro, 0);
    BlockLanding block{ram, kBlock, kTargetPageSize};
    block.file = writable ? fd : ro;
    Landing landing({block});
    rx().set_landing(&landing);
    std::vector<uint8_t> src(kBlock);
    std::vector<TxFrame> frames;
    for (uint64_t off = 0, i = 0; off < kBlock; ++i) {  // runs of 1..16 pages
      const uint32_t len = static_cast<uint32_t>(
          std::min<uint64_t>((i % 16 + 1) * kTargetPageSize, kBlock - off));
      fill_pattern(src.data() + off, len, off + writable);
      frames.push_back({page(off, len), src.data() + off});
      off += len;
    }
    auto got = transfer(tx(), rx(), frames);
    ASSERT_TRUE(rx().error().is_ok()) << rx().error().to_string();
    ASSERT_EQ(got.size(), frames.size());
    for (size_t i = 0; i < got.size(); ++i) EXPECT_EQ(got[i].data, ram + frames[i].hdr.offset);
    std::vector<uint8_t> file(kBlock);
    ASSERT_EQ(pread(fd, file.data(), kBlock, 0), static_cast<ssize_t>(kBlock));
    EXPECT_EQ(std::memcmp(file.data(), src.data(), kBlock), 0);
    // Written through the file, nothing is mapped yet at the landing addresses (pagemap bit 63).
    const int pagemap = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
    ASSERT_GE(pagemap, 0);
    std::vector<uint64_t> entries(kBlock / kTargetPageSize);
    const off_t at = static_cast<off_t>(reinterpret_cast<uintptr_t>(ram) / kTargetPageSize * 8);
    ASSERT_EQ(pread(pagemap, entries.data(), entries.size() * 8, at),
              static_cast<ssize_t>(entries.size() * 8));
    close(pagemap);
    const auto mapped = std::count_if(entries.begin(), entries.end(),
                                      [](uint64_t e) { return (e >> 63) != 0; });
    EXPECT_EQ(mapped, writable ? 0 : static_cast<long>(entries.size()));
    EXPECT_EQ(std::memcmp(ram, src.data(), kBlock), 0);
    rx().set_landing(nullptr);
    munmap(ram, kBlock);
    close(ro);
    close(fd);
  }
}

TEST_P(Datapath, StagedLandingStopsAfterEachHostPage) {
  constexpr size_t kHostPage = kHugePageBytes, kBlock = 3 * kHugePageBytes, kFrame = 256 << 10;
  Guarded guest(kBlock, 0x11);
  Guarded staging(kHostPage, 0);
  Landing landing({{guest.data(), kBlock, static_cast<uint32_t>(kHostPage)}});
  landing.set_staging(staging.data());
  rx().set_landing(&landing);
  std::vector<uint8_t> src(kBlock);
  fill_pattern(src.data(), kBlock, 77);
  std::vector<TxFrame> frames;
  for (uint64_t off = 0; off < kBlock; off += kFrame) {
    const bool end = (off + kFrame) % kHostPage == 0;
    frames.push_back({page(off, kFrame, end ? kFlagHostPageEnd : 0), src.data() + off});
  }
  // Post everything first so that several host pages wait at the receiver at once.
  size_t posted = 0;
  for (int i = 0; i < 1000 && posted < frames.size(); ++i) {
    posted += tx().post(frames.data() + posted, frames.size() - posted);
    ASSERT_TRUE(tx().flush());
  }
  std::vector<RxFrame> buf(64);
  size_t received = 0;
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (received < frames.size() && std::chrono::steady_clock::now() < deadline) {
    posted += tx().post(frames.data() + posted, frames.size() - posted);
    ASSERT_TRUE(tx().flush());
    size_t n = rx().poll_rx(buf.data(), buf.size());
    ASSERT_TRUE(rx().error().is_ok()) << rx().error().to_string();
    for (size_t i = 0; i < n; ++i) {
      const FrameHeader& hdr = buf[i].hdr;
      EXPECT_EQ(buf[i].data, staging.data() + hdr.offset % kHostPage);
      if (hdr.flags & kFlagHostPageEnd) {
        // The batch ends here, and the staging page holds the whole host page.
        ASSERT_EQ(i, n - 1) << "poll_rx went past the end of a host page";
        const uint64_t hp = hdr.offset - hdr.offset % kHostPage;
        EXPECT_EQ(std::memcmp(staging.data(), src.data() + hp, kHostPage), 0) << hp;
        std::memset(staging.data(), 0, kHostPage);  // "placed"
      }
    }
    received += n;
    if (n == 0) {
      pollfd pfd{rx().wait_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 1);
    }
  }
  EXPECT_EQ(received, frames.size());
  EXPECT_TRUE(guest.all(0x11)) << "staged mode wrote into guest memory";
  EXPECT_TRUE(guest.guards_intact());
  EXPECT_TRUE(staging.guards_intact());
}

TEST_P(Datapath, ZeroRoundEndAndControlFramesBothWays) {
  std::vector<uint8_t> small(100), big(1 << 20);
  fill_pattern(small.data(), small.size(), 1);
  fill_pattern(big.data(), big.size(), 2);
  auto ctl = [](ControlType t, uint32_t len) {
    return make_header(FrameType::kControl, 0, 0, len, static_cast<uint32_t>(t), 0, 0);
  };
  std::vector<TxFrame> frames = {
      {ctl(ControlType::kLayout, 100), small.data()},
      {ctl(ControlType::kComplete, 0), nullptr},
      {ctl(ControlType::kDeviceState, 1 << 20), big.data()},
      {make_header(FrameType::kZero, 0, 0, kHugePageBytes, kFlagHostPageEnd, 3, 0), nullptr},
      {make_header(FrameType::kRoundEnd, 0, 0, 0, 0, 3, 0), nullptr},
      {ctl(ControlType::kLayout, 100), small.data()},
  };
  auto got = transfer(*c_.src[0], *c_.dst[0], frames);
  ASSERT_TRUE(c_.dst[0]->error().is_ok()) << c_.dst[0]->error().to_string();
  ASSERT_EQ(got.size(), frames.size());
  for (size_t i = 0; i < frames.size(); ++i)
    EXPECT_EQ(std::memcmp(&got[i].hdr, &frames[i].hdr, sizeof(FrameHeader)), 0) << i;
  EXPECT_EQ(got[0].payload, small);
  EXPECT_EQ(got[1].data, nullptr);
  EXPECT_EQ(got[2].payload, big);
  EXPECT_EQ(got[3].data, nullptr);
  EXPECT_EQ(got[5].payload, small);
  // Destination -> source: page requests on the urgent channel.
  std::vector<TxFrame> req;
  for (uint32_t i = 0; i < 10; ++i)
    req.push_back({make_header(FrameType::kRequest, 0, i * 4096ull, 0, 0, 0, 1), nullptr});
  auto back = transfer(*c_.dst[1], *c_.src[1], req);
  ASSERT_EQ(back.size(), req.size());
  for (uint32_t i = 0; i < 10; ++i) EXPECT_EQ(back[i].hdr.offset, i * 4096ull);
}

TEST_P(Datapath, OrderIsKeptAcrossManyFrames) {
  constexpr size_t kSlots = 64;
  Guarded dst(kSlots * kTargetPageSize, 0);
  Landing landing({{dst.data(), dst.size(), kTargetPageSize}});
  rx().set_landing(&landing);
  std::vector<uint8_t> src(kSlots * kTargetPageSize, 0x5a);
  std::vector<TxFrame> frames;
  for (uint32_t i = 0; i < 30000; ++i) {
    if (i % 3 == 2)
      frames.push_back({make_header(FrameType::kRoundEnd, 0, 0, 0, 0, i, 2), nullptr});
    else
      frames.push_back({page((i % kSlots) * kTargetPageSize, kTargetPageSize, 0, i),
                        src.data() + (i % kSlots) * kTargetPageSize});
  }
  auto got = transfer(tx(), rx(), frames, 15s, 37);
  ASSERT_TRUE(rx().error().is_ok()) << rx().error().to_string();
  ASSERT_EQ(got.size(), frames.size());
  for (uint32_t i = 0; i < got.size(); ++i) ASSERT_EQ(got[i].hdr.round, i);
  EXPECT_TRUE(dst.all(0x5a));
}

TEST_P(Datapath, BackPressureLosesNothingAndPollTxCountsEveryFrame) {
  constexpr size_t kBlock = 1 << 20;
  Guarded dst(kBlock, 0);
  Landing landing({{dst.data(), kBlock, kTargetPageSize}});
  rx().set_landing(&landing);
  std::vector<uint8_t> src(kBlock);
  fill_pattern(src.data(), kBlock, 5);
  auto frame = [&](uint64_t i) {
    uint64_t off = (i * kTargetPageSize) % kBlock;
    return TxFrame{page(off, kTargetPageSize, 0, static_cast<uint32_t>(i)), src.data() + off};
  };
  // The receiver sleeps: the sender must eventually be refused (bounded at 256 MiB).
  uint64_t posted = 0, completed = 0;
  bool refused = false;
  std::vector<TxFrame> burst(64);
  for (int iter = 0; iter < 1024 && !refused; ++iter) {
    for (size_t k = 0; k < burst.size(); ++k) burst[k] = frame(posted + k);
    size_t n = tx().post(burst.data(), burst.size());
    posted += n;
    refused = n < burst.size();
    ASSERT_TRUE(tx().flush());
    completed += tx().poll_tx();
    ASSERT_LE(completed, posted);
  }
  ASSERT_TRUE(refused) << "post never pushed back";
  // Now drain while sending as many again; every frame arrives once, in order.
  const uint64_t total = posted * 2;
  std::vector<RxFrame> buf(64);
  uint64_t received = 0;
  const auto deadline = std::chrono::steady_clock::now() + 15s;
  while ((received < total || completed < total) && std::chrono::steady_clock::now() < deadline) {
    size_t room = std::min<uint64_t>(burst.size(), total - posted);
    for (size_t k = 0; k < room; ++k) burst[k] = frame(posted + k);
    posted += tx().post(burst.data(), room);
    ASSERT_TRUE(tx().flush());
    completed += tx().poll_tx();
    ASSERT_LE(completed, posted);
    size_t n = rx().poll_rx(buf.data(), buf.size());
    ASSERT_TRUE(rx().error().is_ok()) << rx().error().to_string();
    for (size_t i = 0; i < n; ++i) {
      ASSERT_EQ(buf[i].hdr.round, static_cast<uint32_t>(received));
      ASSERT_EQ(std::memcmp(buf[i].data, src.data() + buf[i].hdr.offset, kTargetPageSize), 0);
      ++received;
    }
    if (n == 0) {
      pollfd pfd{rx().wait_fd(), POLLIN, 0};
      ::poll(&pfd, 1, 1);
    }
  }
  EXPECT_EQ(received, total);
  EXPECT_EQ(completed, total);
  EXPECT_EQ(tx().tx_pending(), 0u);
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), kBlock), 0);
}

// wait_fd's contract for a thread that sleeps on it (the real-time urgent worker): it turns
// readable when a frame arrives, and once poll_rx has taken the frame and come back empty a
// few times it is quiet again, cycle after cycle (a readable fd with nothing behind it would
// make the sleeper spin).
TEST_P(Datapath, WaitFdWakesASleeperAndIsQuietOnceDrained) {
  if (!rx().wakes_on_receive()) GTEST_SKIP() << GetParam() << ": wait_fd is a poll timer";
  std::vector<uint8_t> payload(kTargetPageSize, 7);
  Guarded dst(kTargetPageSize, 0);
  Landing landing({{dst.data(), kTargetPageSize, kTargetPageSize}});
  rx().set_landing(&landing);
  RxFrame buf[4];
  auto readable = [&](int ms) {
    pollfd pfd{rx().wait_fd(), POLLIN, 0};
    return ::poll(&pfd, 1, ms) == 1;
  };
  for (uint32_t cycle = 0; cycle < 20; ++cycle) {
    // Empty polls: the receiver arms, and whatever an earlier cycle left is drained.
    for (int i = 0; i < 64; ++i) ASSERT_EQ(rx().poll_rx(buf, 4), 0u);
    ASSERT_FALSE(readable(0)) << "cycle " << cycle << ": readable with nothing to read";
    TxFrame f{page(0, kTargetPageSize, 0, cycle), payload.data()};
    ASSERT_EQ(tx().post(&f, 1), 1u);
    ASSERT_TRUE(tx().flush());
    ASSERT_TRUE(readable(2000)) << "cycle " << cycle << ": the frame did not wake the sleeper";
    size_t got = 0;
    for (int i = 0; i < 1000 && got == 0; ++i) got = rx().poll_rx(buf, 4);
    ASSERT_EQ(got, 1u);
    EXPECT_EQ(buf[0].hdr.round, cycle);
    for (int i = 0; i < 100 && tx().poll_tx() == 0; ++i) std::this_thread::yield();
  }
}

INSTANTIATE_TEST_SUITE_P(Transports, Datapath, ::testing::ValuesIn(harness_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern::testing
