// TCP loopback round trip: the reference for the tcp rows' fault latency. A 64-byte ping-pong
// between this process and a forked echo process (two processes, as source and destination
// are), TCP_NODELAY, blocking sockets; p50/p99 of the round trip in us.
#include <arpa/inet.h>
#include <benchmark/benchmark.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <string>
#include <vector>

#include "bench/loopback_socket.h"

namespace tern {
namespace {

constexpr size_t kMessage = 64;

bool full_io(int fd, char* buf, size_t n, bool send_side) {
  size_t done = 0;
  while (done < n) {
    ssize_t r = send_side ? ::send(fd, buf + done, n - done, MSG_NOSIGNAL)
                          : ::recv(fd, buf + done, n - done, 0);
    if (r <= 0) return false;
    done += static_cast<size_t>(r);
  }
  return true;
}

void no_delay(int fd) {
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

void BM_TcpRoundTrip(benchmark::State& state) {
  // TERN_BENCH_RTT_ROUNDS overrides the number of round trips (tern-bench's `rounds`).
  const char* env = std::getenv("TERN_BENCH_RTT_ROUNDS");
  const int rounds = env ? std::max(100, std::atoi(env)) : static_cast<int>(state.range(0));
  sockaddr_in a;
  int lfd = listen_on_loopback(&a);
  if (lfd < 0) {
    state.SkipWithError("cannot listen on 127.0.0.1");
    return;
  }
  pid_t echo = ::fork();
  if (echo == 0) {  // the echo process: answers until the peer closes
    int c = ::accept(lfd, nullptr, nullptr);
    no_delay(c);
    char buf[kMessage];
    while (full_io(c, buf, kMessage, false) && full_io(c, buf, kMessage, true)) {
    }
    _exit(0);
  }
  ::close(lfd);
  int fd = echo < 0 ? -1 : connect_to(a);
  if (fd < 0) {
    state.SkipWithError("cannot start the echo process or connect to it");
    if (echo > 0) ::waitpid(echo, nullptr, 0);
    return;
  }
  no_delay(fd);
  char buf[kMessage] = {};
  std::vector<double> us;
  us.reserve(static_cast<size_t>(rounds));
  bool ok = true;
  for (auto _ : state) {
    us.clear();
    for (int i = 0; i < rounds + 100 && ok; ++i) {
      auto t0 = std::chrono::steady_clock::now();
      ok = full_io(fd, buf, kMessage, true) && full_io(fd, buf, kMessage, false);
      if (i >= 100)  // warm-up
        us.push_back(std::chrono::duration<double, std::micro>(std::chrono::steady_clock::now() - t0).count());
    }
  }
  ::close(fd);
  ::waitpid(echo, nullptr, 0);
  if (!ok || us.empty()) {
    state.SkipWithError("the echo process stopped answering");
    return;
  }
  std::sort(us.begin(), us.end());
  state.counters["round_trips"] = static_cast<double>(us.size());
  state.counters["p50_us"] = us[us.size() / 2];
  state.counters["p99_us"] = us[us.size() * 99 / 100];
}

BENCHMARK(BM_TcpRoundTrip)->Arg(20000)->Iterations(1)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace tern
