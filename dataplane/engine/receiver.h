// The destination's per-channel receiver: a Poller that takes frames off one urgent or bulk
// channel and puts pages in place.
//
// Precopy: payloads land straight in guest RAM (the guest is not running here yet); a zero
// range (pages the source never populated) costs nothing unless some of it held data here.
// Postcopy (S2): payloads land in this channel's staging host page, which records the host
// address, the target pages received and whether all were zero; once the whole host page is
// there it is installed at once with UFFDIO_COPY (or zero placement), so a guest thread never
// sees part of a huge page. A host page in progress on this channel is never mixed with
// another one: a frame for a different page before it completes fails the migration.
// Blocks with a page cache (RecvState::page_cache: file-backed RAM) land payloads in the page
// cache through tern's own mapping instead, and the whole host page is installed with
// UFFDIO_CONTINUE (Landing kPageCache): the staging page only tracks what arrived.
//
// Threads: poll() on the owning worker; enter_postcopy() only while that worker is stopped;
// last_round_end()/failed()/error() from the control thread.
#pragma once

#include <atomic>
#include <bitset>
#include <cstdint>
#include <memory>

#include "dataplane/engine/marker_seal.h"
#include "dataplane/engine/marker_tamper.h"
#include "dataplane/engine/page_integrity.h"
#include "dataplane/engine/recv_state.h"
#include "dataplane/transport.h"
#include "dataplane/worker.h"

namespace tern::engine {

// One staging host page (S2).
struct StagingPage {
  uint8_t* buffer = nullptr;      // one host page of the largest size, owned by the receiver
  int32_t block = -1;             // page being assembled, -1 = empty
  uint64_t hp = 0;
  uint32_t host_page_size = 0;
  std::bitset<512> have;          // target pages received so far
  uint32_t target_pages = 0;      // == have.count()
  bool all_zero = true;
  bool buffer_dirty = false;      // buffer holds bytes of an earlier page

  void reset() {
    block = -1;
    have.reset();
    target_pages = 0;
    all_zero = true;
  }
};

class ReceiverPoller : public Poller {
 public:
  ReceiverPoller(RecvState& state, Channel* channel);
  ~ReceiverPoller() override;

  PollResult poll() override;
  // None once failed: a broken channel stays readable (EOF) with nothing to receive.
  int wait_fd() const override { return failed() ? -1 : channel_->wait_fd(); }

  // Switches to staged landing and userfaultfd placement. Worker stopped; state.uffd set.
  void enter_postcopy();
  // A bulk receiver on the worker that also runs the fault poller takes bursts of 2 frames in
  // postcopy, so that worker gets back to faults within a few placements. Worker stopped.
  void set_shares_worker_with_faults(bool v) { shares_worker_with_faults_ = v; }
  uint32_t last_round_end() const { return last_round_end_.load(std::memory_order_acquire); }
  bool failed() const { return failed_.load(std::memory_order_acquire); }
  const Status& error() const { return error_; }
  uint32_t channel_index() const { return channel_->index(); }
  const StagingPage& staging() const { return staging_; }

 private:
  void handle(const RxFrame& f);
  // A sealed marker (marker_seal.h) on a keyed channel: opens it and acts on it.
  void handle_marker(const FrameHeader& outer, uint8_t* payload);
  // Page integrity: checks a page frame against its tag; false when the receiver failed.
  bool verify_page(const RxFrame& f);
  void stage(const FrameHeader& h, bool zero);
  void place_zero_range(const FrameHeader& h);
  void place_staged();
  void fail(Status s);

  RecvState& state_;
  Channel* channel_;
  Landing staged_landing_;
  StagingPage staging_;
  bool postcopy_ = false;
  bool shares_worker_with_faults_ = false;
  std::atomic<uint32_t> last_round_end_{0};
  // With session keys: opens the source's markers; plain round ends are refused then.
  std::unique_ptr<MarkerOpener> opener_;
  MarkerTamperSite round_end_tamper_;  // test-only (marker_tamper.h)
  std::unique_ptr<PageTagCheck> tags_;  // with page integrity (page_integrity.h)
  MarkerTamper page_tamper_ = MarkerTamper::kNone;  // test-only: a page's bytes or its tag
  uint8_t replay_tag_[kSealedMarkerBytes];
  FrameHeader replay_outer_{};
  std::atomic<bool> failed_{false};
  Status error_;
};

}  // namespace tern::engine
