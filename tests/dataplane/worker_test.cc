// Worker backoff policies: the urgent worker's sleep-when-idle contract, with a poller whose
// work arrives on an eventfd (as a channel's wait_fd does).
#include <gtest/gtest.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
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

}  // namespace
}  // namespace tern
