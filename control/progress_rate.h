// The progress bar's rate and ETA, from successive query-migrate samples.
//
// The engine's `mbps` counts bytes sent. While never-touched or zero memory is skipped, RAM is
// covered far faster than bytes are sent (a zero range costs a header), so an ETA of
// remaining / mbps reads minutes for a migration that ends in seconds. The estimator therefore
// measures how fast `remaining` shrinks over a window of recent samples (the work rate) and
// bases the ETA on that; when remaining does not shrink (the guest dirties as fast as pages go),
// it falls back to the send rate. The rate is smoothed so one slow sample cannot make the ETA
// leap.
//
// Threads: one caller (ternctl's watch loop).
#pragma once

#include <cstdint>
#include <deque>
#include <optional>

namespace tern::control {

class ProgressRate {
 public:
  // Feeds one sample taken at `t_s` seconds (monotonic). `send_rate` is the engine's bytes per
  // second sent (mbps converted), 0 when unknown.
  void add(double t_s, uint64_t remaining, uint64_t transferred, double send_rate);

  // Bytes of guest RAM covered per second (remaining shrinking, smoothed), or the send rate as
  // fallback; 0 until two samples span some time.
  double work_rate() const { return work_rate_; }
  // Bytes sent per second over the window (from `transferred`), or the engine's rate.
  double send_rate() const { return send_rate_; }
  // Milliseconds until remaining reaches 0 at the work rate; nullopt while unknown.
  std::optional<uint64_t> eta_ms() const { return eta_ms_; }

  // Samples older than this (seconds) leave the window.
  static constexpr double kWindowS = 2.0;

 private:
  struct Sample {
    double t;
    uint64_t remaining;
    uint64_t transferred;
  };
  std::deque<Sample> window_;
  double work_rate_ = 0;
  double send_rate_ = 0;
  std::optional<uint64_t> eta_ms_;
};

}  // namespace tern::control
