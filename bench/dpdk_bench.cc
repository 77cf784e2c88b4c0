// The dpdk transport over memif (both ends in this process, real memif rings and shared
// memory) and over a net_ring pair: bulk throughput in 2 MiB host pages (sent as 2 MiB frames,
// cut into 8 KiB segments) and 4 KiB pages, against BM_Memcpy in transport_bench.cc (memif
// both zero-copy, the default, and with the sender copying, zerocopy=0); and the
// urgent request round trip while a bulk stream saturates the same link.
// Sender and receiver are pumped from the benchmark thread, like BM_ChannelBulk, except the
// round trip, where the source runs on its own thread. scripts/bench-dpdk.sh runs these
// with memcpy and dpdk-testpmd memif forwarding side by side and prints ratios.
#ifdef TERN_HAVE_DPDK
#include <benchmark/benchmark.h>
#include <poll.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <future>
#include <map>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "bench/memcpy_reference.h"
#include "dpdk/dpdk_transport.h"

namespace tern {
namespace {

constexpr size_t kBytes = 16 * kHugePageBytes;  // 32 MiB per iteration

// Buffers posted frames point into: never freed. The pairs (and their keeper threads, which
// may still cut a frame left posted at the end of a run into segments) live until exit, when
// function-local static vectors would already be gone.
uint8_t* bench_buffer(size_t bytes, uint8_t fill) {
  return (new std::vector<uint8_t>(bytes, fill))->data();
}

double thread_cpu_s() {
  timespec ts;
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

struct Pair {
  std::unique_ptr<Transport> src_t, dst_t;
  ChannelSet src, dst;
  std::string error;
};

Pair* pair_for(const std::string& link) {
  static std::map<std::string, std::unique_ptr<Pair>> pairs;
  auto& p = pairs[link];
  if (p) return p.get();
  p = std::make_unique<Pair>();
  if (Status s = dpdk_can_start(); !s.is_ok()) {
    p->error = s.to_string();
    return p.get();
  }
  p->dst_t = std::make_unique<DpdkTransport>();
  p->src_t = std::make_unique<DpdkTransport>();
  std::string tag = std::to_string(::getpid());
  std::string extra;  // TERN_BENCH_DPDK_OPTS: ",window=64,rsize=8" and the like, to explore
  if (const char* e = std::getenv("TERN_BENCH_DPDK_OPTS")) extra = e;
  // "memif_copy": memif with the sender copying fragments into packet buffers (zerocopy=0),
  // the transmit path before zero-copy, measured beside it.
  const bool memif = link.rfind("memif", 0) == 0;
  if (link == "memif_copy") tag += "-copy";
  auto uri = p->dst_t->listen((memif ? "net_memif0,socket=/run/tern-bench-" + tag + ".sock"
                                     : "net_ring,name=bench-" + tag) + extra);
  if (!uri) {
    p->error = uri.status().to_string();
    return p.get();
  }
  auto accepted = std::async(std::launch::async,
                             [&] { return p->dst_t->accept(std::chrono::seconds(5)); });
  const std::string address =
      parse_uri(*uri)->address + (link == "memif_copy" ? ",zerocopy=0" : "");
  auto conn = p->src_t->connect(address, 3, 1, std::chrono::seconds(5));
  auto acc = accepted.get();
  if (!conn || !acc) {
    p->error = (!conn ? conn.status() : acc.status()).to_string();
    return p.get();
  }
  p->src = std::move(*conn);
  p->dst = std::move(*acc);
  return p.get();
}

// The bulk channel of a pair, set up to stream kBytes of `frame`-sized page frames from src
// into a landing over dst (the landing is unset again when it goes), and the scratch buffer the
// reference memcpy writes to.
struct BulkStream {
  BulkStream(Pair* p, uint32_t frame)
      : tx(*p->src[kFirstBulkChannel]),
        rx(*p->dst[kFirstBulkChannel]),
        landing({{dst(), kBytes, kHugePageBytes}}) {
    rx.set_landing(&landing);
    for (uint64_t off = 0; off < kBytes; off += frame) {
      const uint32_t flags = (off + frame) % kHugePageBytes == 0 ? kFlagHostPageEnd : 0;
      frames.push_back(
          {make_header(FrameType::kPage, 0, off, frame, flags, 0, kFirstBulkChannel), src() + off});
    }
  }
  ~BulkStream() { rx.set_landing(nullptr); }
  Status error() const { return !rx.error().is_ok() ? rx.error() : tx.error(); }

  // Allocated on first use (a run that filters these benchmarks out touches none of it).
  static uint8_t* src() {
    static uint8_t* const p = bench_buffer(kBytes, 0x5a);
    return p;
  }
  static uint8_t* dst() {
    static uint8_t* const p = bench_buffer(kBytes, 0);
    return p;
  }
  static uint8_t* scratch() {
    static uint8_t* const p = bench_buffer(kBytes, 0);
    return p;
  }
  Channel& tx;
  Channel& rx;
  Landing landing;
  std::vector<TxFrame> frames;
  std::vector<RxFrame> rx_buf = std::vector<RxFrame>(64);
};

// An idle end yields only after a run of empty polls, as an engine worker does (it spins 2000
// idle polls first): a 2 MiB frame takes four poll_rx calls (512 KiB each), the first three
// of which complete nothing, and yielding on each of those gave the core away mid-frame.
struct IdleBackoff {
  uint32_t empty = 0;
  void after(size_t progress) {
    if (progress != 0)
      empty = 0;
    else if (++empty >= 64)
      sched_yield();
  }
};

void BM_DpdkBulk(benchmark::State& state, const char* link, uint32_t frame) {
  Pair* p = pair_for(link);
  if (!p->error.empty()) {
    state.SkipWithError(p->error.c_str());
    return;
  }
  BulkStream b(p, frame);
  Channel& tx = b.tx;
  Channel& rx = b.rx;
  const std::vector<TxFrame>& frames = b.frames;
  // memcpy of the same bytes (frame by frame) after each transfer, outside the timed part:
  // per-iteration ratios of thread CPU time, so a host whose load drifts during the run still
  // compares like with like.
  std::vector<double> ratio, memcpy_gbps;
  for (auto _ : state) {
    const double t0 = thread_cpu_s();
    size_t posted = 0, received = 0, completed = 0;
    while (received < frames.size() || completed < frames.size()) {
      if (posted < frames.size()) posted += tx.post(frames.data() + posted, frames.size() - posted);
      if (!tx.flush()) break;
      completed += tx.poll_tx();
      received += rx.poll_rx(b.rx_buf.data(), b.rx_buf.size());
      if (!rx.error().is_ok()) break;
    }
    if (!b.error().is_ok()) {
      state.SkipWithError(b.error().to_string().c_str());
      return;
    }
    benchmark::DoNotOptimize(b.dst());
    const double t1 = thread_cpu_s();
    state.PauseTiming();
    memcpy_pieces(b.scratch(), b.src(), kBytes, frame);
    benchmark::DoNotOptimize(b.scratch());
    const double t2 = thread_cpu_s();
    state.ResumeTiming();
    if (t1 > t0 && t2 > t1) {
      ratio.push_back((t2 - t1) / (t1 - t0));
      memcpy_gbps.push_back(static_cast<double>(kBytes) / (t2 - t1) / 1e9);
    }
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBytes));
  report_ratios(state, ratio);
  if (!memcpy_gbps.empty()) {
    std::nth_element(memcpy_gbps.begin(), memcpy_gbps.begin() + memcpy_gbps.size() / 2,
                     memcpy_gbps.end());
    state.counters["memcpy_GBps"] = memcpy_gbps[memcpy_gbps.size() / 2];
  }
}

// The same stream with the sender on its own thread (as two ternd processes run it: each end
// on its own core), timed in real time: the pipeline's throughput, where the single-thread
// figure above is the sum of both ends' costs. The sender is one long-lived thread, like an
// engine worker, started per round by the receiver; idle ends yield (2 cores shared here).
// vs_memcpy: median of per-round ratios to a memcpy of the same bytes on the receiving thread
// right after the round (the sender idle), both in real time.
void BM_DpdkBulkThreads(benchmark::State& state, const char* link) {
  Pair* p = pair_for(link);
  if (!p->error.empty()) {
    state.SkipWithError(p->error.c_str());
    return;
  }
  BulkStream b(p, kHugePageBytes);
  Channel& tx = b.tx;
  Channel& rx = b.rx;
  const std::vector<TxFrame>& frames = b.frames;
  // rounds: bumped by the receiver to start one; sent: bumped by the sender once every frame
  // of it is acknowledged; ~0 in rounds stops the sender.
  std::atomic<uint64_t> rounds{0}, sent{0};
  std::thread sender([&] {
    pthread_setname_np(pthread_self(), "bench-sender");
    for (uint64_t round = 1;; ++round) {
      rounds.wait(round - 1);
      if (rounds.load() == ~uint64_t{0}) return;
      size_t posted = 0, completed = 0;
      IdleBackoff idle;
      while (completed < frames.size() && tx.error().is_ok()) {
        if (posted < frames.size()) posted += tx.post(frames.data() + posted, frames.size() - posted);
        if (!tx.flush()) break;
        const size_t done = tx.poll_tx();
        completed += done;
        idle.after(done);
      }
      sent.store(round);
      sent.notify_one();
    }
  });
  std::vector<RxFrame>& rx_buf = b.rx_buf;
  std::vector<double> ratio, round_gbps, memcpy_gbps;
  using Clock = std::chrono::steady_clock;
  for (auto _ : state) {
    const auto t0 = Clock::now();
    const uint64_t round = rounds.fetch_add(1) + 1;
    rounds.notify_one();
    size_t received = 0;
    IdleBackoff idle;
    while (received < frames.size() && rx.error().is_ok()) {
      const size_t n = rx.poll_rx(rx_buf.data(), rx_buf.size());
      received += n;
      idle.after(n);
    }
    const auto t1 = Clock::now();
    state.PauseTiming();
    // The sender's last acks (the keeper thread would answer them too, only later).
    while (sent.load() != round && rx.error().is_ok() && tx.error().is_ok()) {
      rx.poll_rx(rx_buf.data(), rx_buf.size());
      sched_yield();
    }
    const auto t2 = Clock::now();
    memcpy_pieces(b.scratch(), b.src(), kBytes, kHugePageBytes);
    benchmark::DoNotOptimize(b.scratch());
    const auto t3 = Clock::now();
    state.ResumeTiming();
    if (!b.error().is_ok()) {
      state.SkipWithError(b.error().to_string().c_str());
      break;
    }
    benchmark::DoNotOptimize(b.dst());
    const double transfer_s = std::chrono::duration<double>(t1 - t0).count();
    const double memcpy_s = std::chrono::duration<double>(t3 - t2).count();
    ratio.push_back(memcpy_s / transfer_s);
    round_gbps.push_back(static_cast<double>(kBytes) / transfer_s / 1e9);
    memcpy_gbps.push_back(static_cast<double>(kBytes) / memcpy_s / 1e9);
  }
  rounds.store(~uint64_t{0});
  rounds.notify_one();
  sender.join();
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * kBytes));
  report_ratios(state, std::move(ratio));
  // Medians of the rounds (bytes_per_second is their mean, which slow rounds pull down): the
  // transfer's and the reference memcpy's, to set beside BM_Memcpy.
  if (!round_gbps.empty()) {
    std::sort(round_gbps.begin(), round_gbps.end());
    std::sort(memcpy_gbps.begin(), memcpy_gbps.end());
    state.counters["round_GBps"] = round_gbps[round_gbps.size() / 2];
    state.counters["memcpy_GBps"] = memcpy_gbps[memcpy_gbps.size() / 2];
  }
}

// dst requests a 4 KiB page on the urgent channel; a source thread answers it on the urgent
// channel, streaming 2 MiB frames on the bulk channel meanwhile when `with_bulk` (dst drains
// them between polls of the urgent channel).
void BM_DpdkUrgentRoundTrip(benchmark::State& state, const char* link, bool with_bulk) {
  Pair* p = pair_for(link);
  if (!p->error.empty()) {
    state.SkipWithError(p->error.c_str());
    return;
  }
  constexpr size_t kBulk = 8 * kHugePageBytes;
  // Never freed: frames still queued on the pair when a run ends reference them (bench_buffer).
  static uint8_t* const bulk_src = bench_buffer(kBulk, 0x11);
  static uint8_t* const bulk_dst = bench_buffer(kBulk, 0);
  static uint8_t* const page_src = bench_buffer(4096, 0x22);
  static uint8_t* const page_dst = bench_buffer(4096, 0);
  Landing bulk_landing({{bulk_dst, kBulk, kHugePageBytes}});
  Landing page_landing({{page_dst, 4096, 4096}});
  p->dst[kFirstBulkChannel]->set_landing(&bulk_landing);
  p->dst[kUrgentChannel]->set_landing(&page_landing);
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> bulk_bytes{0};
  std::thread source([&] {
    Channel& urgent = *p->src[kUrgentChannel];
    Channel& bulk = *p->src[kFirstBulkChannel];
    uint64_t off = 0;
    RxFrame req[8];
    while (!stop.load(std::memory_order_relaxed)) {
      // Requests first (S1): answer every one before the next bulk frame.
      size_t n = urgent.poll_rx(req, 8);
      for (size_t i = 0; i < n; ++i) {
        TxFrame f{make_header(FrameType::kPage, 0, 0, 4096, kFlagUrgent | kFlagHostPageEnd, 0,
                              kUrgentChannel),
                  page_src};
        while (urgent.post(&f, 1) == 0 && urgent.error().is_ok()) urgent.flush();
      }
      urgent.flush();
      urgent.poll_tx();
      // Idle pollers yield, as tern's workers do (two spinning threads on a busy 2-core host
      // otherwise take turns by the scheduler's time slice).
      if (!with_bulk) {
        if (n == 0) sched_yield();
        continue;
      }
      TxFrame b{make_header(FrameType::kPage, 0, off, kHugePageBytes, kFlagHostPageEnd, 0,
                            kFirstBulkChannel),
                bulk_src + off};
      if (bulk.post(&b, 1) == 1) off = (off + kHugePageBytes) % kBulk;
      bulk.flush();
      bulk.poll_tx();
      if (!urgent.error().is_ok() || !bulk.error().is_ok()) return;
    }
  });
  Channel& urgent = *p->dst[kUrgentChannel];
  Channel& bulk = *p->dst[kFirstBulkChannel];
  RxFrame got[64];
  for (auto _ : state) {
    TxFrame r{make_header(FrameType::kRequest, 0, 0, 4096, 0, 0, kUrgentChannel), nullptr};
    while (urgent.post(&r, 1) == 0) urgent.flush();
    urgent.flush();
    bool answered = false;
    while (!answered && urgent.error().is_ok() && bulk.error().is_ok()) {
      answered = urgent.poll_rx(got, 1) == 1;
      urgent.poll_tx();
      size_t n = bulk.poll_rx(got + 1, 63);
      for (size_t i = 0; i < n; ++i) bulk_bytes += got[1 + i].hdr.length;
      if (!answered && n == 0) sched_yield();
    }
    if (!answered) {
      state.SkipWithError("a channel failed");
      break;
    }
  }
  stop = true;
  source.join();
  p->dst[kFirstBulkChannel]->set_landing(nullptr);
  p->dst[kUrgentChannel]->set_landing(nullptr);
  state.counters["bulk_GBps"] = benchmark::Counter(static_cast<double>(bulk_bytes.load()) / 1e9,
                                                   benchmark::Counter::kIsRate);
}

BENCHMARK_CAPTURE(BM_DpdkBulk, memif_pages_2m, "memif", kHugePageBytes)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DpdkBulk, memif_copy_pages_2m, "memif_copy", kHugePageBytes)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DpdkBulkThreads, memif_pages_2m, "memif")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_DpdkBulk, memif_pages_4k, "memif", 4u << 10)->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DpdkBulk, ring_pages_2m, "ring", kHugePageBytes)
    ->Unit(benchmark::kMillisecond);
BENCHMARK_CAPTURE(BM_DpdkUrgentRoundTrip, memif_idle, "memif", false)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();
BENCHMARK_CAPTURE(BM_DpdkUrgentRoundTrip, memif_under_bulk, "memif", true)
    ->Unit(benchmark::kMicrosecond)
    ->UseRealTime();

}  // namespace
}  // namespace tern
#endif  // TERN_HAVE_DPDK
