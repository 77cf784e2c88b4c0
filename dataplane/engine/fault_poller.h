// The destination's fault thread work, as a Poller on the worker that owns the urgent channel:
// reads userfaultfd faults, turns each into one page request on the urgent channel
// (de-duplicated per host page), and keeps its worker spinning while requests are
// outstanding so the answer is placed without a wake-up delay. Every thread waiting on a page
// is woken by the placement (UFFDIO_COPY wakes the range).
//
// Threads: poll() on the owning worker; enable() only while that worker is stopped.
#pragma once

#include <atomic>

#include "dataplane/engine/recv_state.h"
#include "dataplane/transport.h"
#include "dataplane/worker.h"

namespace tern::engine {

class FaultPoller : public Poller {
 public:
  FaultPoller(RecvState& state, Channel* urgent);
  void enable() { enabled_ = state_.uffd != nullptr; }
  void disable() { enabled_ = false; }

  PollResult poll() override;
  int wait_fd() const override { return enabled_ ? state_.uffd->fd() : -1; }
  bool keep_spinning() const override {
    return state_.outstanding.load(std::memory_order_relaxed) > 0;
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  const Status& error() const { return error_; }

 private:
  void fail(Status s);
  RecvState& state_;
  Channel* urgent_;
  bool enabled_ = false;
  std::atomic<bool> failed_{false};
  Status error_;
};

}  // namespace tern::engine
