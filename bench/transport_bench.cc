// Bulk channel throughput of the loopback and tcp transports, with memcpy of the same bytes as
// the reference. Each iteration moves kHostPages 2 MiB host pages, sent as 64 KiB frames or as
// 4 KiB target pages, from a source region into a destination region through a connected
// channel pair; sender and receiver are pumped from the benchmark thread (one core, so the
// number is the per-core cost of moving a byte, both ends included). Reports bytes/s.
//
// Link with tern_dataplane_dep and the benchmark library (bench/meson.build).
#include <benchmark/benchmark.h>
#include <poll.h>

#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/transport.h"

namespace tern {
namespace {

constexpr size_t kHostPages = 16;
constexpr size_t kBytes = kHostPages * kHugePageBytes;  // 32 MiB per iteration

// A connected transport pair, kept for the whole run (connecting per iteration would measure
// the handshake).
struct Pair {
  std::unique_ptr<Transport> src_t, dst_t;
  ChannelSet src, dst;
  std::string error;
};

Pair* pair_for(const std::string& name) {
  static std::map<std::string, std::unique_ptr<Pair>> pairs;
  auto& p = pairs[name];
  if (p) return p.get();
  p = std::make_unique<Pair>();
  auto dst = create_transport(name), src = create_transport(name);
  if (!dst || !src) {
    p->error = (!dst ? dst.status() : src.status()).to_string();
    return p.get();
  }
  p->dst_t = std::move(*dst);
  p->src_t = std::move(*src);
  auto uri = p->dst_t->listen(name == "tcp" ? "127.0.0.1:0" : "transport-bench");
  if (!uri) {
    p->error = uri.status().to_string();
    return p.get();
  }
  auto accepted = std::async(std::launch::async,
                             [&] { return p->dst_t->accept(std::chrono::seconds(5)); });
  auto conn = p->src_t->connect(parse_uri(*uri)->address, 3, 1, std::chrono::seconds(5));
  auto acc = accepted.get();
  if (!conn || !acc) {
    p->error = (!conn ? conn.status() : acc.status()).to_string();
    return p.get();
  }
  p->src = std::move(*conn);
  p->dst = std::move(*acc);
  return p.get();
}

void BM_ChannelBulk(benchmark::State& state, const char* transport, uint32_t frame) {
  Pair* p = pair_for(transport);
  if (!p->error.empty()) {
    state.SkipWithError(p->error.c_str());
    return;
  }
  std::vector<uint8_t> src(kBytes, 0x5a), dst(kBytes, 0);
  Landing landing({{dst.data(), kBytes, kHugePageBytes}});
  Channel& tx = *p->src[kFirstBulkChannel];
  Channel& rx = *p->dst[kFirstBulkChannel];
  rx.set_landing(&landing);
  std::vector<TxFrame> frames;
  for (uint64_t off = 0; off < kBytes; off += frame) {
    const uint32_t flags = (off + frame) % kHugePageBytes == 0 ? kFlagHostPageEnd : 0;
    frames.push_back({make_header(FrameType::kPage, 0, off, frame, flags, 0, kFirstBulkChannel),
                      src.data() + off});
  }
  std::vector<RxFrame> rx_buf(64);
  for (auto _ : state) {
    size_t posted = 0, received = 0, completed = 0;
    while (received < frames.size() || completed < frames.size()) {
      if (posted < frames.size()) posted += tx.post(frames.data() + posted, frames.size() - posted);
      if (!tx.flush()) break;
      completed += tx.poll_tx();
      size_t n = rx.poll_rx(rx_buf.data(), rx_buf.size());
      received += n;
      if (!rx.error().is_ok()) break;
      if (n == 0 && posted == frames.size() && tx.tx_pending() == 0 && received < frames.size()) {
        pollfd pfd{rx.wait_fd(), POLLIN, 0};
        ::poll(&pfd, 1, 1);
      }
    }
    if (!rx.error().is_ok() || !tx.error().is_ok()) {
      state.SkipWithError((!rx.error().is_ok() ? rx.error() : tx.error()).to_string().c_str());
      return;
    }
    benchmark::DoNotOptimize(dst.data());
  }
  rx.set_landing(nullptr);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBytes));
  state.counters["frames"] = static_cast<double>(frames.size());
}

// The reference: copying the same bytes in the same frame-sized pieces.
void BM_Memcpy(benchmark::State& state, uint32_t frame) {
  std::vector<uint8_t> src(kBytes, 0x5a), dst(kBytes, 0);
  for (auto _ : state) {
    for (size_t off = 0; off < kBytes; off += frame)
      std::memcpy(dst.data() + off, src.data() + off, frame);
    benchmark::ClobberMemory();
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBytes));
}

BENCHMARK_CAPTURE(BM_Memcpy, frames_64k, 64u << 10)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Memcpy, pages_4k, 4u << 10)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_Memcpy, pages_2m, 2u << 20)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ChannelBulk, loopback_frames_64k, "loopback", 64u << 10)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ChannelBulk, loopback_pages_4k, "loopback", 4u << 10)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ChannelBulk, tcp_frames_64k, "tcp", 64u << 10)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_ChannelBulk, tcp_pages_4k, "tcp", 4u << 10)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tern

// main() comes from libbenchmark_main (bench/meson.build).
