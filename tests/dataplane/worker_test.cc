// Worker backoff policies: the urgent worker's sleep-when-idle contract, with a poller whose
// work arrives on an eventfd (as a channel's wait_fd does).
#include <gtest/gtest.h>
#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <dirent.h>
#include <hwloc.h>

#include <atomic>
#include <chrono>
#include <fstream>
#include <set>
#include <sstream>
#include <string>
#include <thread>

#include "dataplane/worker.h"

namespace tern {
namespace {

using namespace std::chrono_literals;

// A poller whose wait fd is an eventfd created with `count`.
class FdPoller : public Poller {
 public:
  explicit FdPoller(unsigned count = 0) : fd_(eventfd(count, EFD_NONBLOCK | EFD_CLOEXEC)) {}
  ~FdPoller() override { close(fd_); }
  int wait_fd() const override { return fd_; }

 protected:
  int fd_;
};

// Busy when its eventfd had a count (which it consumes), idle otherwise.
class EventPoller : public FdPoller {
 public:
  PollResult poll() override {
    uint64_t v;
    if (read(fd_, &v, sizeof v) != sizeof v) return PollResult::kIdle;
    events_.fetch_add(1);
    return PollResult::kBusy;
  }
  bool keep_spinning() const override { return expecting_.load(); }
  void kick() {
    uint64_t one = 1;
    ASSERT_EQ(write(fd_, &one, sizeof one), static_cast<ssize_t>(sizeof one));
  }
  std::atomic<bool> expecting_{false};
  std::atomic<uint64_t> events_{0};
};

template <typename Pred>
bool eventually(Pred pred, std::chrono::milliseconds limit = 2s) {
  const auto end = std::chrono::steady_clock::now() + limit;
  while (!pred()) {
    if (std::chrono::steady_clock::now() > end) return false;
    std::this_thread::sleep_for(1ms);
  }
  return true;
}

TEST(UrgentWorker, SleepsAtOnceWhenNothingIsExpected) {
  EventPoller p;
  Worker w("test-urgent", -1, urgent_backoff());
  w.add(&p);
  w.start();
  std::this_thread::sleep_for(60ms);
  w.stop();
  const WorkerStats s = w.stats();
  EXPECT_GE(s.blocks, 1u);
  // One idle poll per block (each at most block_timeout_ms): a spinning worker polls millions
  // of times in 60 ms.
  EXPECT_LE(s.idle_polls, s.blocks + 1);
}

TEST(UrgentWorker, WakesWhenItsPollersFdTurnsReadable) {
  EventPoller p;
  BackoffPolicy policy = urgent_backoff();
  policy.block_timeout_ms = 10000;  // only the fd can wake it in time
  Worker w("test-urgent", -1, policy);
  w.add(&p);
  w.start();
  ASSERT_TRUE(eventually([&] { return w.stats().blocks >= 1; }));
  for (uint64_t i = 1; i <= 5; ++i) {
    p.kick();
    ASSERT_TRUE(eventually([&] { return p.events_.load() == i; })) << "event " << i;
  }
  w.stop();
}

TEST(UrgentWorker, SpinsWhileAnAnswerIsDueThenSleeps) {
  EventPoller p;
  p.expecting_ = true;
  const BackoffPolicy policy = urgent_backoff();
  Worker w("test-urgent", -1, policy);
  w.add(&p);
  w.start();
  ASSERT_TRUE(eventually([&] { return w.stats().blocks >= 2; }));
  w.stop();
  const WorkerStats s = w.stats();
  // Each block comes after a run of spin_iterations idle polls.
  EXPECT_GE(s.idle_polls, uint64_t{policy.spin_iterations} * (s.blocks - 1));
}

// A poller whose fd is readable for good while it never has work: the contract broken.
class StuckFdPoller : public FdPoller {
 public:
  StuckFdPoller() : FdPoller(1) {}  // count 1, never read
  PollResult poll() override { return PollResult::kIdle; }
};

// As root (this suite's machine) the urgent worker runs real-time; a wait fd that stays
// readable would make it spin at real-time priority, so it falls back to fair scheduling.
TEST(UrgentWorker, LeavesRealTimeWhenAWaitFdStaysReadableWithNothingBehindIt) {
  EventPoller probe;
  Worker rt("test-urgent", -1, urgent_backoff());
  rt.add(&probe);
  rt.start();
  ASSERT_TRUE(eventually([&] { return rt.stats().blocks >= 1; }));
  const bool can_realtime = rt.stats().realtime;
  rt.stop();
  if (!can_realtime) GTEST_SKIP() << "no CAP_SYS_NICE here: the urgent worker never runs real-time";

  StuckFdPoller stuck;
  Worker w("test-urgent", -1, urgent_backoff());
  w.add(&stuck);
  w.start();
  ASSERT_TRUE(eventually([&] { return !w.stats().realtime && w.stats().blocks > 0; }, 10s))
      << "still real-time after " << w.stats().blocks << " empty wake-ups";
  w.stop();
  EXPECT_GE(w.stats().blocks, uint64_t{BackoffPolicy::kMaxEmptyWakes});
}

// "0-3,8,10-11" (sysfs cpulist) -> {0,1,2,3,8,10,11}.
std::set<int> parse_cpulist(const std::string& text) {
  std::set<int> out;
  std::stringstream ss(text);
  std::string part;
  while (std::getline(ss, part, ',')) {
    if (part.empty() || part == "\n") continue;
    const auto dash = part.find('-');
    const int lo = std::stoi(part.substr(0, dash));
    const int hi = dash == std::string::npos ? lo : std::stoi(part.substr(dash + 1));
    for (int c = lo; c <= hi; ++c) out.insert(c);
  }
  return out;
}

// A PCI device hwloc can see, with the kernel's list of CPUs local to it; "" when there is none.
std::string visible_pci_device(std::set<int>* local) {
  DIR* d = ::opendir("/sys/bus/pci/devices");
  if (d == nullptr) return "";
  std::string found;
  hwloc_topology_t topo;
  hwloc_topology_init(&topo);
  hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  const bool loaded = hwloc_topology_load(topo) == 0;
  while (dirent* e = ::readdir(d)) {
    const std::string name = e->d_name;
    if (!loaded || name[0] == '.') continue;
    if (hwloc_get_pcidev_by_busidstring(topo, name.c_str()) == nullptr) continue;
    std::ifstream f("/sys/bus/pci/devices/" + name + "/local_cpulist");
    std::string list;
    if (!std::getline(f, list) || list.empty()) continue;
    *local = parse_cpulist(list);
    found = name;
    break;
  }
  hwloc_topology_destroy(topo);
  ::closedir(d);
  return found;
}

// Workers near the NIC (Transport::device_pci): every CPU chosen near a PCI device is one the
// kernel lists as local to it, and an address hwloc does not know means no preference.
// A poller with work queued behind a full send window (kWaiting) until its pipe has room.
class WindowPoller : public Poller {
 public:
  WindowPoller() {
    EXPECT_EQ(pipe2(fds_, O_NONBLOCK | O_CLOEXEC), 0);
    char buf[4096] = {};
    while (write(fds_[1], buf, sizeof buf) > 0) {}  // fill it: not writable
  }
  ~WindowPoller() override {
    close(fds_[0]);
    close(fds_[1]);
  }
  PollResult poll() override {
    polls_.fetch_add(1);
    char c;
    if (write(fds_[1], &c, 1) == 1) {
      sent_.store(true);
      return PollResult::kBusy;
    }
    return sent_.load() ? PollResult::kIdle : PollResult::kWaiting;
  }
  void wait_fds(std::vector<pollfd>& out) const override {
    if (!sent_.load()) out.push_back({fds_[1], POLLOUT, 0});
  }
  void make_room() {
    char buf[65536];
    while (read(fds_[0], buf, sizeof buf) > 0) {}
  }
  int fds_[2];
  std::atomic<uint64_t> polls_{0};
  std::atomic<bool> sent_{false};
};

TEST(Worker, WaitingPollerSleepsAtOnceUntilItsFdIsReady) {
  WindowPoller p;
  BackoffPolicy policy;  // the bulk default: spins 2000 idle polls before blocking
  policy.block_timeout_ms = 10000;  // only the fd can wake it in time
  Worker w("test-window", -1, policy);
  w.add(&p);
  w.start();
  ASSERT_TRUE(eventually([&] { return w.stats().waits >= 1; }));
  std::this_thread::sleep_for(30ms);
  // Asleep on the fd, not spinning: one poll per wait.
  EXPECT_LE(p.polls_.load(), 2u);
  p.make_room();
  EXPECT_TRUE(eventually([&] { return p.sent_.load(); }));
  w.stop();
}

TEST(ChooseWorkerCpus, NearAPciDeviceTakesOnlyCpusLocalToIt) {
  std::set<int> local;
  const std::string pci = visible_pci_device(&local);
  if (pci.empty()) GTEST_SKIP() << "hwloc sees no PCI device with a local_cpulist here";
  const std::vector<int> all = choose_worker_cpus(4);
  ASSERT_EQ(all.size(), 4u);
  if (all[0] < 0) GTEST_SKIP() << "hwloc cannot load this host's topology";
  const std::vector<int> near = choose_worker_cpus(4, pci);
  ASSERT_EQ(near.size(), 4u);
  for (int c : near) EXPECT_EQ(local.count(c), 1u) << "cpu " << c << " is not local to " << pci;
  EXPECT_EQ(choose_worker_cpus(4, "ffff:ff:1f.7"), all);
}

// The topology is read once per NIC and kept: every call spreads n workers over the same cores
// in the same order, whatever n.
TEST(ChooseWorkerCpus, SameCoresInTheSameOrderOnEveryCall) {
  const std::vector<int> five = choose_worker_cpus(5);
  const std::vector<int> three = choose_worker_cpus(3);
  ASSERT_EQ(five.size(), 5u);
  ASSERT_EQ(three.size(), 3u);
  for (size_t i = 0; i < three.size(); ++i) EXPECT_EQ(three[i], five[i]) << "worker " << i;
  EXPECT_EQ(choose_worker_cpus(5), five);
}

}  // namespace
}  // namespace tern
