// Dirty limit (S4): per-vCPU dirty-rate limits enforced by a throttle thread.
//
// Each period the throttle thread runs, for every limited vCPU:
//   PREPARE    dirty pages between ring-full exits (Guest::dirty_ring_counters), over a window of
//              at least three ring rounds (VcpuThrottle), giving the vCPU's dirty rate and its
//              time per ring round;
//   CALCULATE  the next penalty (next_penalty below): far from the limit, a proportional step
//              that pays back the time the vCPU ran ahead of its budget; close to it, a fixed
//              step of 1/20 of a ring round at the limit; inside the +-5% band, no change, so
//              the step never carries the rate across the band (no oscillation);
//   SET PENALTY Guest::set_ring_full_penalty; the vCPU sleeps it at its next ring-full exits
//              (ACCEPT PENALTY, in the guest). A vCPU that only reads never fills its ring and is
//              never slowed.
//
// Threads: every method may be called from any thread; the throttle thread is internal and runs
// only while at least one vCPU is limited.
#pragma once

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "dataplane/guest.h"
#include "dataplane/status.h"

namespace tern {

// Rates are in MB/s of dirtied target pages (MiB, as QEMU's dirty limit).
double pages_to_mbps(uint64_t pages, double seconds);

// One PREPARE window of one vCPU.
struct ThrottleWindow {
  uint64_t dirty_pages = 0;      // pages the vCPU pushed into its ring in the window
  uint64_t ring_full_exits = 0;  // ring-full exits in the window (where penalties are paid)
  double seconds = 0;            // length of the window
};

// CALCULATE: the penalty (us per ring-full exit) to set after `w`, given the current one and
// the limit (MB/s, > 0). Pure; see the file comment for the rule.
uint64_t next_penalty_us(uint64_t current_us, double limit_mbps, const ThrottleWindow& w);

// PREPARE and CALCULATE for one vCPU, without clock or guest (the limiter and the tests feed
// it): cumulative counters go in at each look; a window closes once it holds at least three
// ring-full exits (it spans whole ring rounds), or after `max_window_s` with at least one,
// and then the penalty is recomputed.
class VcpuThrottle {
 public:
  void start(const DirtyRingCounters& now, double t);
  // `t`: seconds on the steady clock's scale (as DirtyRingCounters::last_exit_ns). Returns
  // true when a window closed (the penalty may have changed).
  bool observe(const DirtyRingCounters& now, double t, double limit_mbps, double max_window_s);
  uint64_t penalty_us = 0;
  double current_mbps = 0;      // over the open window (or the last closed one)
  uint64_t ring_round_us = 0;   // time per ring-full round in the last closed window

 private:
  DirtyRingCounters base_;
  double base_t_ = 0;
};

struct VcpuDirtyLimit {
  uint32_t cpu_index = 0;
  uint64_t limit_rate = 0;    // MB/s; 0 = not limited
  uint64_t current_rate = 0;  // MB/s, measured over the last window
  uint64_t penalty_us = 0;    // sleep per ring-full exit now in force
};

class DirtyLimiter {
 public:
  static constexpr std::chrono::milliseconds kDefaultPeriod{1000};

  explicit DirtyLimiter(Guest& guest);
  ~DirtyLimiter();  // lifts every limit (penalties back to 0) and joins the thread
  DirtyLimiter(const DirtyLimiter&) = delete;
  DirtyLimiter& operator=(const DirtyLimiter&) = delete;

  // False when the guest has no dirty ring (set() then fails with kUnavailable).
  bool supported() const { return guest_.dirty_limit_vcpus() > 0; }
  // Limits one vCPU (or all when cpu is empty) to `mbps` (> 0). Errors name the bad argument.
  Status set(std::optional<uint32_t> cpu, uint64_t mbps);
  // Lifts the limit of one vCPU (or all); its penalty drops to 0 at once.
  Status cancel(std::optional<uint32_t> cpu);
  // The limited vCPUs (all vCPUs when `all`), by index.
  std::vector<VcpuDirtyLimit> query(bool all = false) const;
  bool active() const;
  // x-vcpu-dirty-limit-period: how often the throttle loop runs (10 ms .. 60 s).
  Status set_period(std::chrono::milliseconds period);

  // For query-migrate: the largest penalty now in force over the vCPUs (us per ring-full round),
  // and the average time a limited vCPU takes to fill its ring (us), from the last windows.
  uint64_t throttle_time_per_round_us() const;
  uint64_t ring_full_time_us() const;

 private:
  struct Vcpu {
    uint64_t limit_mbps = 0;
    VcpuThrottle throttle;
  };
  void run();
  double now_s() const;

  Guest& guest_;
  // Everything below is guarded by mu_.
  mutable std::mutex mu_;
  std::condition_variable cv_;
  std::vector<Vcpu> vcpus_;
  std::chrono::milliseconds period_ = kDefaultPeriod;
  bool exit_ = false;
  std::thread thread_;
};

}  // namespace tern
