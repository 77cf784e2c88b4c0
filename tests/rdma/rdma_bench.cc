// tern rdma micro-bench, run by tests/rdma/bench.sh next to ib_write_bw / ib_write_lat:
//   rdma_bench bw  [MiB]      bulk: 64 KiB page frames on one bulk channel, sender and receiver
//                             threads, source memory registered (zero-copy), destination memory
//                             registered (direct placement, as in precopy); prints "MB/s X"
//   rdma_bench lat [iters]    urgent channel round trip: a 32-byte kRequest from the destination,
//                             a 32-byte reply from the source; prints "rtt_us p50 X p99 Y"
// Both ends live in this process on the address in TERN_RDMA_IP (default 127.0.0.1).
#include <poll.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <future>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "rdma/rdma_transport.h"

using namespace tern;
using Clock = std::chrono::steady_clock;

namespace {

struct Pair {
  std::unique_ptr<Transport> src_t, dst_t;
  ChannelSet src, dst;
};

Pair connect_pair() {
  Pair p;
  p.src_t = std::make_unique<RdmaTransport>();
  p.dst_t = std::make_unique<RdmaTransport>();
  const char* ip = std::getenv("TERN_RDMA_IP");
  auto uri = p.dst_t->listen(std::string(ip && *ip ? ip : "127.0.0.1") + ":0");
  if (!uri) {
    std::fprintf(stderr, "listen: %s\n", uri.status().to_string().c_str());
    std::exit(1);
  }
  auto acc = std::async(std::launch::async, [&] { return p.dst_t->accept(std::chrono::seconds(10)); });
  auto con = p.src_t->connect(parse_uri(*uri)->address, 3, 1, std::chrono::seconds(10));
  auto a = acc.get();
  if (!con || !a) {
    std::fprintf(stderr, "connect: %s / %s\n", con ? "ok" : con.status().to_string().c_str(),
                 a ? "ok" : a.status().to_string().c_str());
    std::exit(1);
  }
  p.src = std::move(*con);
  p.dst = std::move(*a);
  return p;
}

int bw(uint64_t mib) {
  constexpr uint32_t kFrame = 64 << 10;
  constexpr size_t kBlock = 8 << 20;
  const uint64_t frames = (mib << 20) / kFrame;
  std::vector<uint8_t> src(kBlock, 0x3c), dst(kBlock);
  Pair p = connect_pair();
  // As a precopy migration without postcopy armed: the source announces the memory it sends
  // from, the destination the memory pages land in (direct placement, rdma_channel.h).
  for (auto [t, mem] : {std::pair{p.src_t.get(), &src}, std::pair{p.dst_t.get(), &dst}}) {
    if (Status s = t->register_memory(mem->data(), mem->size()); !s.is_ok()) {
      std::fprintf(stderr, "register_memory: %s\n", s.to_string().c_str());
      return 1;
    }
  }
  Landing landing({{dst.data(), kBlock, kFrame}});
  Channel& tx = *p.src[kFirstBulkChannel];
  Channel& rx = *p.dst[kFirstBulkChannel];
  rx.set_landing(&landing);
  // One untimed warm-up pass (first touches, the chunk registration), then the timed one.
  auto run = [&](uint64_t frames) -> double {
    const auto t0 = Clock::now();
    std::thread sender([&] {
      TxFrame burst[16];
      uint64_t posted = 0, done = 0;
      while (done < frames && tx.error().is_ok()) {
        const size_t n = std::min<uint64_t>(16, frames - posted);
        for (size_t k = 0; k < n; ++k) {
          const uint64_t off = ((posted + k) * kFrame) % kBlock;
          burst[k] = {make_header(FrameType::kPage, 0, off, kFrame, 0, 0, kFirstBulkChannel),
                      src.data() + off};
        }
        const size_t accepted = tx.post(burst, n);
        posted += accepted;
        tx.flush();
        const size_t completed = tx.poll_tx();
        done += completed;
        // Like the engine's idle backoff: leave the CPU to rxe's kernel work when stalled.
        if (accepted == 0 && completed == 0) std::this_thread::yield();
      }
    });
    RxFrame buf[32];
    uint64_t got = 0;
    int idle = 0;
    while (got < frames && rx.error().is_ok()) {
      const size_t n = rx.poll_rx(buf, 32);
      got += n;
      // The engine's backoff: spin a little, then sleep on wait_fd, leaving the CPU to rxe.
      idle = n ? 0 : idle + 1;
      if (idle > 64) {
        pollfd pfd{rx.wait_fd(), POLLIN, 0};
        ::poll(&pfd, 1, 1);
      }
    }
    sender.join();
    return std::chrono::duration<double>(Clock::now() - t0).count();
  };
  run(kBlock / kFrame * 2);
  const double secs = run(frames);
  if (!rx.error().is_ok() || !tx.error().is_ok()) {
    std::fprintf(stderr, "bw: %s %s\n", rx.error().to_string().c_str(), tx.error().to_string().c_str());
    return 1;
  }
  std::printf("MB/s %.1f  (%llu MiB in %.3f s, 64 KiB frames, %llu placed directly)\n",
              (mib << 20) / secs / 1e6, static_cast<unsigned long long>(mib), secs,
              static_cast<unsigned long long>(rdma_direct_counters().placed_frames));
  return 0;
}

int lat(int iters) {
  Pair p = connect_pair();
  Channel& req_tx = *p.dst[kUrgentChannel];
  Channel& req_rx = *p.src[kUrgentChannel];
  std::vector<double> us;
  RxFrame f;
  for (int i = 0; i < iters + 100; ++i) {
    const auto t0 = Clock::now();
    TxFrame r{make_header(FrameType::kRequest, 0, 4096ull * (i % 64), 4096, 0, 0, kUrgentChannel), nullptr};
    req_tx.post(&r, 1);
    req_tx.flush();
    while (req_rx.poll_rx(&f, 1) == 0)
      if (!req_rx.error().is_ok()) return 1;
    TxFrame z{make_header(FrameType::kZero, 0, f.hdr.offset, 4096, kFlagUrgent | kFlagHostPageEnd, 0,
                          kUrgentChannel), nullptr};
    req_rx.post(&z, 1);
    req_rx.flush();
    while (req_tx.poll_rx(&f, 1) == 0)
      if (!req_tx.error().is_ok()) return 1;
    req_tx.poll_tx();
    req_rx.poll_tx();
    if (i >= 100) us.push_back(std::chrono::duration<double, std::micro>(Clock::now() - t0).count());
  }
  std::sort(us.begin(), us.end());
  std::printf("rtt_us p50 %.2f p99 %.2f  (%d round trips, 32-byte frames)\n", us[us.size() / 2],
              us[us.size() * 99 / 100], iters);
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  const std::string mode = argc > 1 ? argv[1] : "bw";
  if (!rdma_device_present()) {
    std::printf("no RDMA device: %s\n", rdma_device_summary().c_str());
    return 77;
  }
  if (mode == "bw") return bw(argc > 2 ? std::strtoull(argv[2], nullptr, 10) : 256);
  if (mode == "lat") return lat(argc > 2 ? std::atoi(argv[2]) : 2000);
  std::fprintf(stderr, "usage: %s bw [MiB] | lat [iters]\n", argv[0]);
  return 2;
}
