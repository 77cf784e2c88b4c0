#include "dataplane/worker.h"

#include <hwloc.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <sys/eventfd.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <map>
#include <mutex>

namespace tern {

Worker::Worker(std::string name, int cpu, BackoffPolicy policy)
    : name_(std::move(name)), cpu_(cpu), policy_(policy) {
  event_fd_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
}

Worker::~Worker() {
  stop();
  if (event_fd_ >= 0) close(event_fd_);
}

void Worker::add(Poller* poller) { pollers_.push_back(poller); }

void Worker::start() {
  stop_.store(false);
  thread_ = std::thread([this] { run(); });
}

void Worker::stop() {
  if (!thread_.joinable()) return;
  stop_.store(true);
  wake();
  thread_.join();
}

void Worker::wake() {
  uint64_t one = 1;
  ssize_t r = write(event_fd_, &one, sizeof one);
  (void)r;
}

WorkerStats Worker::stats() const {
  WorkerStats s;
  s.busy_polls = busy_polls_.load();
  s.idle_polls = idle_polls_.load();
  s.blocks = blocks_.load();
  s.waits = waits_.load();
  s.busy_ns = busy_ns_.load();
  s.realtime = realtime_.load();
  return s;
}

BackoffPolicy urgent_backoff() {
  BackoffPolicy p;
  p.spin_iterations = 256;  // ~0.3 ms at most, while an answer is due
  p.yield_iterations = 0;
  p.spin_only_while_expecting = true;
  p.slice_us = 100;  // the kernel's minimum slice
  p.realtime_priority = 1;
  return p;
}

BackoffPolicy bulk_backoff() {
  BackoffPolicy p;
  p.spin_iterations = 64;
  p.yield_iterations = 0;
  return p;
}

// sched_setattr(2) for SCHED_OTHER with a slice; glibc 2.36 has no wrapper or struct.
static void request_slice(uint32_t slice_us) {
  struct {
    uint32_t size;
    uint32_t sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime;
    uint64_t sched_deadline;
    uint64_t sched_period;
  } attr{};
  attr.size = sizeof attr;
  attr.sched_policy = SCHED_OTHER;
  attr.sched_nice = getpriority(PRIO_PROCESS, static_cast<id_t>(gettid()));  // keep the nice value
  attr.sched_runtime = uint64_t{slice_us} * 1000;
  // Kernels before 6.12 ignore the runtime of SCHED_OTHER: the worker then keeps the default.
  (void)syscall(SYS_sched_setattr, 0, &attr, 0u);
}

// Real-time if asked and allowed (returns true), else a short fair slice if asked.
static bool set_scheduling(const BackoffPolicy& p) {
  if (p.realtime_priority > 0) {
    sched_param sp{};
    sp.sched_priority = p.realtime_priority;
    if (pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp) == 0) return true;
  }
  if (p.slice_us > 0) request_slice(p.slice_us);
  return false;
}

static void leave_realtime(const BackoffPolicy& p) {
  sched_param sp{};
  pthread_setschedparam(pthread_self(), SCHED_OTHER, &sp);
  if (p.slice_us > 0) request_slice(p.slice_us);
}

static void pin_to_cpu(int cpu) {
  cpu_set_t set;
  CPU_ZERO(&set);
  CPU_SET(cpu, &set);
  pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void Worker::run() {
  pthread_setname_np(pthread_self(), name_.substr(0, 15).c_str());
  if (cpu_ >= 0) pin_to_cpu(cpu_);
  realtime_.store(set_scheduling(policy_));
  uint32_t idle_run = 0;
  uint32_t empty_wakes = 0;  // fd wake-ups in a row after which every poller was idle
  uint64_t busy = 0, idle = 0;
  // One clock read per iteration: the time since the previous read is charged to busy_ns when
  // the iteration was busy (a clock read per poll was a visible share of a spinning worker).
  auto last = std::chrono::steady_clock::now();
  while (!stop_.load(std::memory_order_relaxed)) {
    bool any_busy = false, waiting = false;
    for (Poller* p : pollers_) {
      const PollResult r = p->poll();
      any_busy |= r == PollResult::kBusy;
      waiting |= r == PollResult::kWaiting;
    }
    if (any_busy) {
      ++busy;
      idle_run = 0;
      empty_wakes = 0;
      if ((busy & 15) == 0) {
        auto now = std::chrono::steady_clock::now();
        busy_ns_.fetch_add(std::chrono::duration_cast<std::chrono::nanoseconds>(now - last).count(),
                           std::memory_order_relaxed);
        last = now;
      }
      if ((busy & 1023) == 0) busy_polls_.store(busy, std::memory_order_relaxed);
      continue;
    }
    last = std::chrono::steady_clock::now();
    if (waiting) {
      // Nothing can move until a wait fd is ready (a full send window): sleep on it now. A
      // spin here took the core from the peer that has to make the room (on a shared host).
      bool spin = false;
      uint32_t poll_us = 0;
      for (Poller* p : pollers_) {
        spin |= p->keep_spinning();
        if (uint32_t us = p->wait_poll_us(); us && (!poll_us || us < poll_us)) poll_us = us;
      }
      if (!spin) {
        waits_.fetch_add(1, std::memory_order_relaxed);
        block(poll_us);
        continue;
      }
    }
    ++idle;
    if ((idle & 1023) == 0) idle_polls_.store(idle, std::memory_order_relaxed);
    ++idle_run;
    if (policy_.spin_only_while_expecting) {
      bool expecting = false;
      for (Poller* p : pollers_) expecting |= p->keep_spinning();
      if (expecting && idle_run < policy_.spin_iterations) continue;
      if (!block()) {
        empty_wakes = 0;
      } else if (++empty_wakes >= BackoffPolicy::kMaxEmptyWakes && realtime_.load()) {
        leave_realtime(policy_);
        realtime_.store(false);
        std::fprintf(stderr, "tern: worker %s: its wait fds stay readable with nothing to "
                             "receive; it leaves real-time scheduling\n", name_.c_str());
      }
      continue;
    }
    if (idle_run < policy_.spin_iterations) continue;
    bool spin = false;
    for (Poller* p : pollers_) spin |= p->keep_spinning();
    if (spin || idle_run < policy_.spin_iterations + policy_.yield_iterations) {
      sched_yield();
      continue;
    }
    block();
    idle_run = policy_.spin_iterations;  // after a block, poll and yield before blocking again
  }
  busy_polls_.store(busy);
  idle_polls_.store(idle);
}

bool Worker::block(uint32_t timeout_us) {
  std::vector<pollfd>& fds = fds_;
  fds.clear();
  fds.push_back({event_fd_, POLLIN, 0});
  for (Poller* p : pollers_) p->wait_fds(fds);
  blocks_.fetch_add(1, std::memory_order_relaxed);
  if (timeout_us > 0) {
    const timespec ts{static_cast<time_t>(timeout_us / 1000000),
                      static_cast<long>(timeout_us % 1000000) * 1000};
    ::ppoll(fds.data(), fds.size(), &ts, nullptr);
  } else {
    ::poll(fds.data(), fds.size(), policy_.block_timeout_ms);
  }
  if (fds[0].revents & POLLIN) {
    uint64_t v;
    ssize_t r = read(event_fd_, &v, sizeof v);
    (void)r;
    return false;
  }
  for (size_t i = 1; i < fds.size(); ++i)
    if (fds[i].revents) return true;
  return false;
}

// The cores hwloc places nearest `near_pci` (all of them when it is empty or unknown); empty
// when hwloc cannot load the topology.
static std::vector<int> cores_near(const std::string& near_pci) {
  std::vector<int> cpus;
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return cpus;
  // I/O discovery (the pci plugin) only when a NIC is named: it is slow, and the plugin leaks a
  // small allocation each load (seen with LeakSanitizer, Debian 12's hwloc 2.9).
  if (!near_pci.empty()) hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_load(topo) != 0) {
    hwloc_topology_destroy(topo);
    return cpus;
  }
  hwloc_const_cpuset_t allowed = hwloc_topology_get_topology_cpuset(topo);
  hwloc_bitmap_t near = hwloc_bitmap_dup(allowed);
  if (!near_pci.empty()) {
    hwloc_obj_t dev = hwloc_get_pcidev_by_busidstring(topo, near_pci.c_str());
    hwloc_obj_t anc = dev ? hwloc_get_non_io_ancestor_obj(topo, dev) : nullptr;
    if (anc && anc->cpuset && !hwloc_bitmap_iszero(anc->cpuset)) hwloc_bitmap_copy(near, anc->cpuset);
  }
  int ncores = hwloc_get_nbobjs_inside_cpuset_by_type(topo, near, HWLOC_OBJ_CORE);
  for (int i = 0; i < ncores; ++i) {
    hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(topo, near, HWLOC_OBJ_CORE, i);
    if (core && core->cpuset) cpus.push_back(hwloc_bitmap_first(core->cpuset));
  }
  hwloc_bitmap_free(near);
  hwloc_topology_destroy(topo);
  return cpus;
}

std::vector<int> choose_worker_cpus(int n, const std::string& near_pci) {
  // Read once per process and NIC: loading the topology took 2-880 ms on this 2-vCPU host
  // (hundreds of /sys reads, slow under load), inside every migration's setup.
  static std::mutex mu;
  static std::map<std::string, std::vector<int>> known;
  std::vector<int> cpus;
  {
    std::lock_guard<std::mutex> lock(mu);
    auto it = known.find(near_pci);
    if (it == known.end()) it = known.emplace(near_pci, cores_near(near_pci)).first;
    cpus = it->second;
  }
  if (cpus.empty()) return std::vector<int>(n, -1);
  std::vector<int> out;
  for (int i = 0; i < n; ++i) out.push_back(cpus[i % cpus.size()]);
  return out;
}

}  // namespace tern
