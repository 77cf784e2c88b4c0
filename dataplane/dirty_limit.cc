#include "dataplane/dirty_limit.h"

#include <algorithm>
#include <cmath>

#include "dataplane/wire.h"

namespace tern {
namespace {

using Clock = std::chrono::steady_clock;

constexpr double kPagesPerMb = double(1 << 20) / kTargetPageSize;
constexpr double kBand = 0.05;       // hold when within 5% of the limit
constexpr double kFar = 0.25;        // proportional step when more than 25% away
constexpr double kGain = 0.8;        // of the proportional step (damps overshoot)
constexpr double kFixedStep = 0.05;  // of a ring round at the limit, when close
constexpr int kMaxWindowPeriods = 5; // a window with fewer exits than kMinExits closes after this
constexpr uint64_t kMinExits = 3;    // ring rounds a window should span

DirtyRingCounters minus(const DirtyRingCounters& a, const DirtyRingCounters& b) {
  return {.dirty_pages = a.dirty_pages - b.dirty_pages,
          .ring_full_exits = a.ring_full_exits - b.ring_full_exits,
          .ring_full_ns = a.ring_full_ns - b.ring_full_ns,
          .penalty_ns = a.penalty_ns - b.penalty_ns,
          .ops = a.ops - b.ops};
}

}  // namespace

double pages_to_mbps(uint64_t pages, double seconds) {
  return seconds > 0 ? static_cast<double>(pages) / kPagesPerMb / seconds : 0;
}

uint64_t next_penalty_us(uint64_t current_us, double limit_mbps, const ThrottleWindow& w) {
  if (w.ring_full_exits == 0 || w.seconds <= 0 || limit_mbps <= 0) return current_us;
  const double rate = pages_to_mbps(w.dirty_pages, w.seconds);
  const double gap = rate - limit_mbps;
  if (std::fabs(gap) <= kBand * limit_mbps) return current_us;
  const double exits = static_cast<double>(w.ring_full_exits);
  // Time per ring-full round if the vCPU dirtied exactly at the limit: the most a penalty
  // ever needs to be.
  const double round_at_limit_us =
      static_cast<double>(w.dirty_pages) / exits / (limit_mbps * kPagesPerMb) * 1e6;
  double delta_us;
  if (std::fabs(gap) > kFar * std::max(rate, limit_mbps)) {
    // How far ahead of its budget the vCPU ran in this window, paid back at its exits.
    const double ahead_s = static_cast<double>(w.dirty_pages) / (limit_mbps * kPagesPerMb) -
                           w.seconds;
    delta_us = kGain * ahead_s / exits * 1e6;
  } else {
    delta_us = (gap > 0 ? 1 : -1) * kFixedStep * round_at_limit_us;
  }
  const double next = std::clamp(static_cast<double>(current_us) + delta_us, 0.0,
                                 round_at_limit_us);
  return static_cast<uint64_t>(std::llround(next));
}

// With an exit record, windows run from one ring-full exit to another: whole ring rounds, so
// the bursty way a vCPU fills its ring does not show as noise in the rate.
void VcpuThrottle::start(const DirtyRingCounters& now, double t) {
  base_ = now;
  base_t_ = t;
  if (now.last_exit_ns != 0) {
    base_.dirty_pages = now.pages_at_last_exit;
    base_t_ = static_cast<double>(now.last_exit_ns) / 1e9;
  }
}

bool VcpuThrottle::observe(const DirtyRingCounters& now, double t, double limit_mbps,
                           double max_window_s) {
  DirtyRingCounters end = now;
  double end_t = t;
  if (now.last_exit_ns != 0) {
    end.dirty_pages = now.pages_at_last_exit;
    end_t = static_cast<double>(now.last_exit_ns) / 1e9;
  }
  const DirtyRingCounters d = minus(end, base_);
  const double open_s = t - base_t_;
  if (d.ring_full_exits < kMinExits && !(d.ring_full_exits >= 1 && open_s >= max_window_s)) {
    current_mbps = pages_to_mbps(now.dirty_pages - base_.dirty_pages, open_s);
    if (open_s >= 4 * max_window_s) start(now, t);  // a vCPU that hardly writes: start over
    return false;
  }
  const double seconds = end_t - base_t_;
  current_mbps = pages_to_mbps(d.dirty_pages, seconds);
  ring_round_us = static_cast<uint64_t>(seconds * 1e6 / static_cast<double>(d.ring_full_exits));
  penalty_us = next_penalty_us(
      penalty_us, limit_mbps,
      {.dirty_pages = d.dirty_pages, .ring_full_exits = d.ring_full_exits, .seconds = seconds});
  start(now, t);
  return true;
}

DirtyLimiter::DirtyLimiter(Guest& guest) : guest_(guest), vcpus_(guest.dirty_limit_vcpus()) {}

DirtyLimiter::~DirtyLimiter() {
  {
    std::lock_guard lk(mu_);
    exit_ = true;
  }
  cv_.notify_all();
  if (thread_.joinable()) thread_.join();
  (void)cancel(std::nullopt);
}

Status DirtyLimiter::set(std::optional<uint32_t> cpu, uint64_t mbps) {
  if (!supported())
    return Status(Code::kUnavailable,
                  "dirty limit needs a guest with a dirty ring; this guest has none");
  if (mbps == 0)
    return Status(Code::kInvalidArgument,
                  "dirty-rate must be at least 1 MB/s (use cancel-vcpu-dirty-limit to lift it)");
  std::lock_guard lk(mu_);
  if (cpu && *cpu >= vcpus_.size())
    return Status(Code::kInvalidArgument,
                  "cpu-index " + std::to_string(*cpu) + " is out of range (the guest has " +
                      std::to_string(vcpus_.size()) + " vCPUs)");
  const bool was_active = std::any_of(vcpus_.begin(), vcpus_.end(),
                                      [](const Vcpu& v) { return v.limit_mbps != 0; });
  if (!was_active)
    if (Status s = guest_.set_dirty_limit_tracking(true); !s.is_ok()) return s;
  for (uint32_t i = 0; i < vcpus_.size(); ++i) {
    if (cpu && *cpu != i) continue;
    if (vcpus_[i].limit_mbps == 0) vcpus_[i].throttle.start(guest_.dirty_ring_counters(i), now_s());
    vcpus_[i].limit_mbps = mbps;
  }
  if (!thread_.joinable()) thread_ = std::thread([this] { run(); });
  cv_.notify_all();
  return Status::ok();
}

Status DirtyLimiter::cancel(std::optional<uint32_t> cpu) {
  std::lock_guard lk(mu_);
  if (cpu && *cpu >= vcpus_.size())
    return Status(Code::kInvalidArgument,
                  "cpu-index " + std::to_string(*cpu) + " is out of range (the guest has " +
                      std::to_string(vcpus_.size()) + " vCPUs)");
  bool any_left = false, any_cancelled = false;
  for (uint32_t i = 0; i < vcpus_.size(); ++i) {
    Vcpu& v = vcpus_[i];
    if (!cpu || *cpu == i) {
      any_cancelled |= v.limit_mbps != 0;
      v.limit_mbps = 0;
      v.throttle = VcpuThrottle{};
      guest_.set_ring_full_penalty(i, 0);
    }
    any_left |= v.limit_mbps != 0;
  }
  if (any_cancelled && !any_left) (void)guest_.set_dirty_limit_tracking(false);
  return Status::ok();
}

std::vector<VcpuDirtyLimit> DirtyLimiter::query(bool all) const {
  std::lock_guard lk(mu_);
  std::vector<VcpuDirtyLimit> out;
  for (uint32_t i = 0; i < vcpus_.size(); ++i) {
    const Vcpu& v = vcpus_[i];
    if (all || v.limit_mbps != 0)
      out.push_back({i, v.limit_mbps, static_cast<uint64_t>(std::llround(v.throttle.current_mbps)),
                     v.throttle.penalty_us});
  }
  return out;
}

bool DirtyLimiter::active() const {
  std::lock_guard lk(mu_);
  return std::any_of(vcpus_.begin(), vcpus_.end(), [](const Vcpu& v) { return v.limit_mbps; });
}

Status DirtyLimiter::set_period(std::chrono::milliseconds period) {
  if (period < std::chrono::milliseconds(10) || period > std::chrono::seconds(60))
    return Status(Code::kInvalidArgument, "x-vcpu-dirty-limit-period must be 10..60000 ms, not " +
                                              std::to_string(period.count()));
  std::lock_guard lk(mu_);
  period_ = period;
  cv_.notify_all();
  return Status::ok();
}

uint64_t DirtyLimiter::throttle_time_per_round_us() const {
  std::lock_guard lk(mu_);
  uint64_t m = 0;
  for (const Vcpu& v : vcpus_)
    if (v.limit_mbps) m = std::max(m, v.throttle.penalty_us);
  return m;
}

uint64_t DirtyLimiter::ring_full_time_us() const {
  std::lock_guard lk(mu_);
  uint64_t sum = 0, n = 0;
  for (const Vcpu& v : vcpus_)
    if (v.limit_mbps && v.throttle.ring_round_us) sum += v.throttle.ring_round_us, ++n;
  return n ? sum / n : 0;
}

// On the steady clock's own scale, as DirtyRingCounters::last_exit_ns.
double DirtyLimiter::now_s() const {
  return std::chrono::duration<double>(Clock::now().time_since_epoch()).count();
}

void DirtyLimiter::run() {
  std::unique_lock lk(mu_);
  while (!exit_) {
    const bool active =
        std::any_of(vcpus_.begin(), vcpus_.end(), [](const Vcpu& v) { return v.limit_mbps; });
    if (!active) {
      cv_.wait(lk);
      continue;
    }
    cv_.wait_for(lk, period_);
    if (exit_) break;
    // PREPARE and CALCULATE per vCPU, then SET PENALTY when it changed.
    const double now = now_s();
    const double max_window = kMaxWindowPeriods * static_cast<double>(period_.count()) / 1e3;
    for (uint32_t i = 0; i < vcpus_.size(); ++i) {
      Vcpu& v = vcpus_[i];
      if (v.limit_mbps == 0) continue;
      const uint64_t before = v.throttle.penalty_us;
      if (v.throttle.observe(guest_.dirty_ring_counters(i), now, static_cast<double>(v.limit_mbps),
                             max_window) &&
          v.throttle.penalty_us != before)
        guest_.set_ring_full_penalty(i, v.throttle.penalty_us);
    }
  }
}

}  // namespace tern
