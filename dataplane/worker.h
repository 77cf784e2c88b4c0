// Poll-mode worker: a (optionally pinned) thread that runs pollers in a loop. Each poll
// reports busy or idle; after a run of idle iterations the worker backs off: spin, then
// yield, then block on the pollers' wait fds and its own eventfd, so that an oversubscribed
// 2-core host still makes progress. A poller that expects work soon (an outstanding postcopy
// request) says so through keep_spinning(), and the worker then never blocks.
//
// Threads: add() before start(); wake() and stats() from any thread; poll() and the other
// Poller methods run on the worker thread only.
#pragma once

#include <poll.h>

#include <atomic>
#include <cstdint>
#include <string>
#include <thread>
#include <vector>

namespace tern {

// kWaiting: work is queued but cannot move until one of the poller's wait_fds() is ready (a
// full send window): the worker blocks on them at once instead of spinning first.
enum class PollResult { kIdle, kBusy, kWaiting };

class Poller {
 public:
  virtual ~Poller() = default;
  virtual PollResult poll() = 0;
  // Fd readable when there may be work (or -1 for none).
  virtual int wait_fd() const { return -1; }
  // What a blocked worker waits on for this poller: by default wait_fd() for POLLIN; a poller
  // that said kWaiting adds the fds (and events) that end its wait.
  virtual void wait_fds(std::vector<pollfd>& out) const {
    if (int fd = wait_fd(); fd >= 0) out.push_back({fd, POLLIN, 0});
  }
  // After kWaiting: > 0 when no fd ends the wait (a send window that reopens only by polling
  // its completions or acks: dpdk, rdma), the microseconds to sleep before polling again.
  virtual uint32_t wait_poll_us() const { return 0; }
  // True while work is imminent and blocking would add wake-up latency.
  virtual bool keep_spinning() const { return false; }
};

struct BackoffPolicy {
  uint32_t spin_iterations = 2000;    // idle polls before yielding
  uint32_t yield_iterations = 200;    // idle polls with sched_yield before blocking
  int block_timeout_ms = 5;           // longest single block (bounds a missed wake-up)
  // true: when idle, spin only while a poller's keep_spinning() says work is imminent (at most
  // spin_iterations idle polls), else block at once; no yield phase.
  bool spin_only_while_expecting = false;
  // > 0: the scheduler slice this worker asks for (Linux >= 6.12, EEVDF; sched_setattr's
  // sched_runtime), so that it preempts a busy core as soon as it wakes. 0: the default.
  uint32_t slice_us = 0;
  // > 0: run as SCHED_FIFO at this priority (needs CAP_SYS_NICE; else the slice above applies).
  // Only for a worker that blocks when idle: a spinning real-time thread would starve its core.
  // Guard: after kMaxEmptyWakes wake-ups in a row by a readable wait fd with nothing to poll
  // (a channel breaking the wait_fd contract), the worker leaves real-time for the slice.
  static constexpr uint32_t kMaxEmptyWakes = 1000;
  int realtime_priority = 0;
};

// For a worker that carries only latency-critical work (postcopy requests and answers): it
// blocks on its pollers' fds as soon as nothing is expected (so their events wake it, and a
// vCPU it has just woken gets the core), spins briefly while an answer is due, and runs
// real-time (or with a short slice), so that a wake-up preempts whichever spinning worker or
// vCPU holds a core.
BackoffPolicy urgent_backoff();

// For a bulk worker whose channels wake a sleeper when a frame arrives (and, on the source,
// has no urgent channel): a short spin, then it blocks on its fds. Spinning buys a bulk
// stream nothing once the kernel buffers for it, and it takes the core from the peer (on one
// host) or the guest.
BackoffPolicy bulk_backoff();

struct WorkerStats {
  uint64_t busy_polls = 0;
  uint64_t idle_polls = 0;
  uint64_t blocks = 0;       // times the worker blocked
  uint64_t waits = 0;        // of which at once, on a poller's kWaiting (full send window)
  uint64_t busy_ns = 0;      // time spent in polls that reported busy
  bool realtime = false;     // running SCHED_FIFO now (see BackoffPolicy::realtime_priority)
};

class Worker {
 public:
  // cpu < 0: not pinned.
  explicit Worker(std::string name, int cpu = -1, BackoffPolicy policy = {});
  ~Worker();  // stops and joins
  Worker(const Worker&) = delete;
  Worker& operator=(const Worker&) = delete;

  void add(Poller* poller);
  void start();
  void stop();
  // Ends a blocking wait early (any thread).
  void wake();
  WorkerStats stats() const;
  const std::string& name() const { return name_; }

 private:
  void run();
  // true: a poller's fd (not wake()) ended it. timeout_us > 0: at most that long, else
  // block_timeout_ms.
  bool block(uint32_t timeout_us = 0);
  std::string name_;
  int cpu_;
  BackoffPolicy policy_;
  std::vector<Poller*> pollers_;
  std::thread thread_;
  std::atomic<bool> stop_{false};
  int event_fd_ = -1;
  std::vector<pollfd> fds_;  // block()'s poll set, kept to avoid an allocation per block
  std::atomic<uint64_t> busy_polls_{0}, idle_polls_{0}, blocks_{0}, waits_{0}, busy_ns_{0};
  std::atomic<bool> realtime_{false};
};

// CPUs for `n` workers: hwloc cores, spread, preferring the NUMA node nearest `near_pci`
// (a PCI address of the NIC, or empty). Fewer cores than workers: CPUs repeat. The topology is
// read on the first call for a given near_pci and kept for the process's life (any thread).
std::vector<int> choose_worker_cpus(int n, const std::string& near_pci = "");

}  // namespace tern
