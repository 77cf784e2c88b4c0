#include "control/progress_rate.h"

#include <algorithm>
#include <cmath>
#include <cstdint>

namespace tern::control {

namespace {
// How far one sample moves the smoothed rate towards the window's rate: one stalled or bursty
// sample shifts the ETA by a fraction of its jump.
constexpr double kSmoothing = 0.3;
// The window must span at least this long before a rate is trusted.
constexpr double kMinSpanS = 0.15;
}  // namespace

void ProgressRate::add(double t_s, uint64_t remaining, uint64_t transferred, double send_rate) {
  window_.push_back({t_s, remaining, transferred});
  while (window_.size() > 2 && t_s - window_.front().t > kWindowS) window_.pop_front();

  const Sample& first = window_.front();
  const double span = t_s - first.t;
  send_rate_ = send_rate;
  if (span >= kMinSpanS && transferred > first.transferred)
    send_rate_ = static_cast<double>(transferred - first.transferred) / span;
  if (remaining == 0) {
    eta_ms_ = 0;
    return;
  }
  if (span < kMinSpanS) return;  // no rate yet: keep the last ETA (or none)
  double rate = first.remaining > remaining
                    ? static_cast<double>(first.remaining - remaining) / span
                    : send_rate_;  // remaining flat (dirtying keeps pace): bytes sent it is
  if (rate <= 0) return;
  work_rate_ = work_rate_ > 0 ? work_rate_ + kSmoothing * (rate - work_rate_) : rate;
  eta_ms_ = static_cast<uint64_t>(std::llround(static_cast<double>(remaining) / work_rate_ * 1e3));
}

}  // namespace tern::control
