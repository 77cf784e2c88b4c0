// The destination's fault thread work, as a Poller on the worker that owns the urgent channel:
// reads userfaultfd faults, turns each into one page request on the urgent channel
// (de-duplicated per host page), and keeps its worker spinning while requests are
// outstanding so the answer is placed without a wake-up delay. Every thread waiting on a page
// is woken by the placement (UFFDIO_COPY wakes the range).
//
// Postcopy recovery: while the link is broken (no urgent channel) faults are still read and
// recorded, and pages received as zero markers still placed here; once a new link is up, every
// page with a recorded fault is requested (again, for requests lost with the old link).
//
// Threads: poll() on the owning worker; enable(), set_channel(), request_again() only while
// that worker is stopped.
#pragma once

#include <atomic>
#include <memory>

#include "dataplane/engine/marker_seal.h"
#include "dataplane/engine/recv_state.h"
#include "dataplane/transport.h"
#include "dataplane/worker.h"

namespace tern::engine {

class FaultPoller : public Poller {
 public:
  FaultPoller(RecvState& state, Channel* urgent);
  void enable() { enabled_ = state_.uffd != nullptr; }
  void disable() { enabled_ = false; }
  // The urgent channel of a new link, or nullptr while the link is broken (faults are only
  // recorded then).
  void set_channel(Channel* urgent);
  // The next poll requests every page a guest thread waits on, whether or not it was requested
  // before (the old link may have lost the request or its answer).
  void request_again() { request_again_ = true; }

  PollResult poll() override;
  int wait_fd() const override { return enabled_ ? state_.uffd->fd() : -1; }
  // No answer is imminent while the link is broken: the worker may sleep on the userfaultfd.
  bool keep_spinning() const override {
    return urgent_ && state_.outstanding.load(std::memory_order_relaxed) > 0;
  }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  const Status& error() const { return error_; }

 private:
  void fail(Status s);
  // Posts `n` requests on the urgent channel (none while the link is broken); false on failure.
  bool post_requests(TxFrame* requests, size_t n);
  bool request_waiting_pages();
  RecvState& state_;
  Channel* urgent_;
  // With session keys on the urgent channel: requests travel sealed (marker_seal.h).
  std::unique_ptr<MarkerSealer> sealer_;
  bool enabled_ = false;
  bool request_again_ = false;
  std::atomic<bool> failed_{false};
  Status error_;
};

}  // namespace tern::engine
