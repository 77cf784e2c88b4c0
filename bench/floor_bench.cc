// The floors of a precopy on this host (issue 12): what it costs to move N bytes of written
// guest RAM from one process to another and land them in fresh memory, with nothing else (no
// protocol, no dirty tracking, no verification). Any TCP migration, tern's or QEMU's, does at
// least BM_TcpFloor: the source sends its resident pages, the destination receives
// them straight into memory it has never touched (anonymous, transparent huge pages, as both
// destinations' guest RAM), so the kernel zeroes each fresh huge page before the copy.
//   BM_TcpFloor: this process (the source) holds N bytes of pseudo-random data, prefilled before
//   the clock starts; a forked receiver maps N fresh bytes (MADV_HUGEPAGE) and recv()s into them.
//   Counters: wall_ms (connect to the receiver's last byte), src_cpu_s / dst_cpu_s and
//   src_minflt / dst_minflt (each process's getrusage over its part), bytes.
//   BM_CopyFloor: the same N bytes copied once, in this process, into fresh memory (the same
//   mapping as the receiver's): what any destination that lands pages by copying pays at least
//   (a shared-memory transport such as memif with zero-copy send: one copy, no TCP stack).
//   Counters: wall_ms, dst_cpu_s, dst_minflt, bytes (src_cpu_s 0: the source only publishes).
// N: TERN_BENCH_FLOOR_BYTES (tern-bench's floor rows pass the row's written bytes), else the arg.
#include <arpa/inet.h>
#include <signal.h>
#include <benchmark/benchmark.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>

#include "bench/loopback_socket.h"

namespace tern {
namespace {

constexpr size_t kSendChunk = 8u << 20;

struct Usage {
  double cpu_s = 0;
  double minflt = 0;
};

Usage usage_now() {
  rusage r{};
  getrusage(RUSAGE_SELF, &r);
  auto sec = [](const timeval& t) { return static_cast<double>(t.tv_sec) + t.tv_usec * 1e-6; };
  return {sec(r.ru_utime) + sec(r.ru_stime), static_cast<double>(r.ru_minflt)};
}

void* fresh_huge_mapping(size_t n) {
  void* p = mmap(nullptr, n, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (p == MAP_FAILED) return nullptr;
  madvise(p, n, MADV_HUGEPAGE);
  return p;
}

// The receiver process: accepts one connection, receives n bytes into fresh memory, then
// writes its Usage delta to `report`. Exits non-zero on any error.
[[noreturn]] void receive(int lfd, size_t n, int report) {
  int c = ::accept(lfd, nullptr, nullptr);
  if (c < 0) _exit(1);
  Usage u0 = usage_now();
  auto* dst = static_cast<uint8_t*>(fresh_huge_mapping(n));
  if (!dst) _exit(2);
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(c, dst + got, n - got, 0);
    if (r <= 0) _exit(3);
    got += static_cast<size_t>(r);
  }
  Usage u1 = usage_now();
  Usage d{u1.cpu_s - u0.cpu_s, u1.minflt - u0.minflt};
  _exit(::write(report, &d, sizeof d) == sizeof d ? 0 : 4);
}

size_t floor_bytes(benchmark::State& state) {
  const char* env = std::getenv("TERN_BENCH_FLOOR_BYTES");
  const size_t n = env ? std::strtoull(env, nullptr, 10) : static_cast<size_t>(state.range(0));
  if (n == 0) state.SkipWithError("TERN_BENCH_FLOOR_BYTES: a number of bytes > 0");
  return n;
}

// n bytes of pseudo-random data (xorshift64: incompressible pages), resident; null on failure.
uint8_t* prefilled(benchmark::State& state, size_t n) {
  auto* p = static_cast<uint8_t*>(fresh_huge_mapping(n));
  if (!p) {
    state.SkipWithError("cannot map the source's bytes");
    return nullptr;
  }
  uint64_t x = 0x9e3779b97f4a7c15ull;
  for (size_t i = 0; i + 8 <= n; i += 8) {
    x ^= x << 13, x ^= x >> 7, x ^= x << 17;
    std::memcpy(p + i, &x, 8);
  }
  return p;
}

void BM_CopyFloor(benchmark::State& state) {
  const size_t n = floor_bytes(state);
  uint8_t* src = n ? prefilled(state, n) : nullptr;
  if (!src) return;
  for (auto _ : state) {
    Usage u0 = usage_now();
    auto t0 = std::chrono::steady_clock::now();
    auto* dst = static_cast<uint8_t*>(fresh_huge_mapping(n));
    if (!dst) {
      state.SkipWithError("cannot map the destination's bytes");
      break;
    }
    std::memcpy(dst, src, n);
    benchmark::DoNotOptimize(dst);
    auto wall = std::chrono::steady_clock::now() - t0;
    Usage u1 = usage_now();
    munmap(dst, n);
    state.counters["wall_ms"] = std::chrono::duration<double, std::milli>(wall).count();
    state.counters["src_cpu_s"] = 0;
    state.counters["dst_cpu_s"] = u1.cpu_s - u0.cpu_s;
    state.counters["src_minflt"] = 0;
    state.counters["dst_minflt"] = u1.minflt - u0.minflt;
    state.counters["bytes"] = static_cast<double>(n);
  }
  munmap(src, n);
}

void BM_TcpFloor(benchmark::State& state) {
  const size_t n = floor_bytes(state);
  uint8_t* src = n ? prefilled(state, n) : nullptr;
  if (!src) return;
  for (auto _ : state) {
    sockaddr_in a;
    int lfd = listen_on_loopback(&a);
    int report[2] = {-1, -1};
    if (lfd < 0 || ::pipe2(report, O_CLOEXEC) != 0) {
      state.SkipWithError("cannot listen on 127.0.0.1");
      if (lfd >= 0) ::close(lfd);
      break;
    }
    pid_t child = ::fork();
    if (child == 0) receive(lfd, n, report[1]);
    ::close(lfd);
    ::close(report[1]);
    Usage u0 = usage_now();
    auto t0 = std::chrono::steady_clock::now();
    int fd = child > 0 ? connect_to(a) : -1;
    bool ok = fd >= 0;
    for (size_t off = 0; ok && off < n;) {
      ssize_t r = ::send(fd, src + off, std::min(kSendChunk, n - off), MSG_NOSIGNAL);
      ok = r > 0;
      off += ok ? static_cast<size_t>(r) : 0;
    }
    Usage u1 = usage_now();
    Usage dst{};
    ok = ok && ::read(report[0], &dst, sizeof dst) == sizeof dst;
    auto wall = std::chrono::steady_clock::now() - t0;
    if (fd >= 0) ::close(fd);
    ::close(report[0]);
    int status = 0;
    if (child > 0 && !ok) ::kill(child, SIGKILL);  // it may still wait in accept() or recv()
    if (child > 0) ::waitpid(child, &status, 0);
    if (!ok) {
      std::string why = WIFEXITED(status) && WEXITSTATUS(status) != 0
                            ? "the receiver failed (exit status " +
                                  std::to_string(WEXITSTATUS(status)) +
                                  ": 1 accept, 2 mmap, 3 recv)"
                            : std::string("the source could not connect or send to the receiver");
      state.SkipWithError(why.c_str());
      break;
    }
    state.counters["wall_ms"] = std::chrono::duration<double, std::milli>(wall).count();
    state.counters["src_cpu_s"] = u1.cpu_s - u0.cpu_s;
    state.counters["dst_cpu_s"] = dst.cpu_s;
    state.counters["src_minflt"] = u1.minflt - u0.minflt;
    state.counters["dst_minflt"] = dst.minflt;
    state.counters["bytes"] = static_cast<double>(n);
  }
  munmap(src, n);
}

BENCHMARK(BM_TcpFloor)->Arg(256 << 20)->Iterations(1)->Unit(benchmark::kMillisecond);
BENCHMARK(BM_CopyFloor)->Arg(256 << 20)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tern
