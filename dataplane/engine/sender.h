// The source's per-worker sender: a Poller that sends dirty host pages on the bulk channels it
// owns and, on the one worker that owns the urgent channel, serves postcopy page requests.
//
// S1: with postcopy-preempt, a bulk channel sends one chunk per poll while urgent work is
//     pending, so urgent requests cut into a huge page between chunks; the interrupted page
//     resumes where it stopped once every queued request is served.
// Never-populated host pages (RamBlock::populated) are not read: a lane claims a run of them
// together and sends one zero-range frame (wire.h, kZero) for the run. In precopy, when the
// destination takes page runs, consecutive dirty 4 KiB host pages are claimed together too and
// go out as frames of up to a chunk (a stream transport then reads them straight into guest
// RAM instead of through its buffer).
// S3: a request for a page that a bulk channel has partly sent is not dropped or postponed: it
//     takes its place in the request queue and, when served, that bulk channel finishes the
//     page at once with the urgent flag.
//
// Threads: poll() runs on the owning worker only; failed()/error() from the control thread.
#pragma once

#include <array>
#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/engine/marker_seal.h"
#include "dataplane/engine/marker_tamper.h"
#include "dataplane/engine/send_state.h"
#include "dataplane/transport.h"
#include "dataplane/worker.h"

namespace tern::engine {

class SenderPoller : public Poller {
 public:
  struct BulkChannel {
    Channel* channel;
    uint32_t slot;  // index into SendState::slots
  };
  // `urgent` is the urgent channel if this poller owns it, else nullptr. `bandwidth_share` is
  // the fraction of max_bandwidth this poller may use.
  SenderPoller(SendState& state, SendCounters& counters, const Layout& layout, Channel* urgent,
               std::vector<BulkChannel> bulk, double bandwidth_share);

  PollResult poll() override;
  int wait_fd() const override;
  // Adds POLLOUT on the bulk channels whose full send window stopped their lane (kWaiting).
  void wait_fds(std::vector<pollfd>& out) const override;
  // A bulk lane stopped by a full window that only polling reopens (no tx wait fd): sleep
  // kWindowPollUs between polls rather than spin (the receiver may need this core).
  uint32_t wait_poll_us() const override;
  bool keep_spinning() const override { return urgent_work_pending(); }

  bool failed() const { return failed_.load(std::memory_order_acquire); }
  // Valid once failed() is true.
  const Status& error() const { return error_; }

 private:
  // Frames built and not yet posted: a lane's chunks of one poll accumulate here and go to
  // the channel in one post() at the end of the poll (or earlier when the next chunk might
  // not fit); what the channel did not take waits for the next poll.
  static constexpr size_t kBacklog = 256;
  static constexpr size_t kQueue = 8192;   // queued page requests
  static constexpr size_t kResidencyWords = 64;  // host pages whose residency a lane caches / 64

  // A channel and the host page it is sending.
  struct Lane {
    Channel* channel = nullptr;
    BulkSlot* slot = nullptr;  // bulk lanes only
    uint32_t index = 0;        // channel index on the wire
    uint64_t key = 0;          // page_key of the current page, 0 = none
    uint32_t block = 0;
    uint64_t hp = 0;           // the page's (a page run's first) host page
    uint32_t run_pages = 1;    // host pages of the page run (SendState::page_runs), else 1
    uint32_t next = 0;         // byte offset of the next chunk inside the page (run)
    bool urgent = false;       // frames carry kFlagUrgent
    std::array<TxFrame, kBacklog> backlog{};
    // With session keys: seals this lane's markers (marker_seal.h: round ends); a sealed
    // marker's payload sits in sealed[] at its backlog position until post() copies it.
    std::unique_ptr<MarkerSealer> sealer;
    std::array<std::array<uint8_t, kSealedMarkerBytes>, kBacklog> sealed{};
    size_t backlog_head = 0, backlog_tail = 0;
    uint64_t stripe_next = 0, stripe_end = 0;  // claimed part of the round's page space
    uint32_t round = 0;        // round the stripe belongs to
    bool dirty_tx = false;     // posted since the last flush
    bool tx_full = false;      // the last drain() stopped at a full send window
    // Which host pages [res_first, res_first+res_count) of block res_block may hold data
    // (RamBlock::populated), read once per window rather than once per page.
    uint32_t res_block = 0;
    uint64_t res_first = 0, res_count = 0;
    std::array<uint64_t, kResidencyWords> res_bits{};
  };
  enum class Next { kNone, kPage, kZeroRange };
  struct Request {
    uint64_t key;        // the requested page
    int32_t raise_lane;  // S3: bulk lane (index into bulk_) to finish now, or -1
  };

  bool poll_requests();
  // One received page request (opened already when the urgent channel is keyed); false when
  // the sender failed on it.
  bool take_request(const FrameHeader& h);
  // Opens a sealed request; false (and the sender fails) when it does not open.
  bool open_request(const FrameHeader& outer, uint8_t* payload, FrameHeader* inner);
  // Queues the marker `inner` on lane (sealed when the lane has a sealer, else plain);
  // `covered`: the bytes of the page frame a page tag goes before (page_integrity.h).
  void queue_marker(Lane& lane, const FrameHeader& inner, const uint8_t* covered = nullptr,
                    size_t covered_len = 0);
  // Queues a page frame, after its tag with page integrity on (the backlog then holds two
  // entries per page frame: page_slots()).
  void queue_page_frame(Lane& lane, const FrameHeader& h, const uint8_t* payload);
  size_t page_slots() const { return state_.page_integrity ? 2 : 1; }
  bool serve_urgent();
  bool step_bulk(Lane& lane, int chunk_budget);
  // Claims the lane's next dirty host page (kPage: start_page done), or a run of dirty,
  // never-populated ones whose zero-range frame it queues (kZeroRange); kNone: round done.
  Next next_dirty_page(Lane& lane);
  bool populated(Lane& lane, uint32_t block, uint64_t hp);
  void queue_zero_range(Lane& lane, uint32_t block, uint64_t first, uint64_t pages);
  void start_page(Lane& lane, uint32_t block, uint64_t hp, uint64_t key, uint32_t run_pages = 1);
  // Precopy with page runs: claims the dirty, populated 4 KiB host pages that follow `first`
  // (already claimed), up to a chunk; returns the run's length in host pages.
  uint32_t claim_run(Lane& lane, uint32_t block, uint64_t first);
  // Builds the frames of the next chunk of lane's page into its backlog (posted by drain()).
  // A chunk ends early where the backlog is full; the page goes on from there.
  void send_chunk(Lane& lane);
  bool drain(Lane& lane);  // posts backlog; true when empty
  // The lane waits for its channel's send window and can sleep until it reopens
  // (Channel::tx_wait_fd): not busy, the worker blocks.
  static bool sleeps_on_window(const Lane& l) { return l.tx_full && l.channel->tx_wait_fd() >= 0; }
  // A bulk lane whose window reopens only by polling: in precopy it waits (kWaiting) polling
  // every kWindowPollUs; in postcopy (a request may be waiting for this lane's page) it spins.
  bool polls_window(const Lane& l) const {
    return l.tx_full && l.channel->tx_wait_fd() < 0 && !urgent_work_pending() &&
           !state_.postcopy.load(std::memory_order_relaxed);
  }
  static constexpr uint32_t kWindowPollUs = 50;
  // Makes room for a chunk's frames in lane's backlog, posting what is there if need be;
  // false when the channel's window is full (the lane waits for the next poll).
  bool room_for_chunk(Lane& lane);
  static size_t backlog_free(const Lane& l) { return kBacklog - (l.backlog_tail - l.backlog_head); }
  void finish_page(Lane& lane);
  bool bulk_mid_page() const;
  // Urgent-only sender: some bulk channel (any worker's) is part-way through a huge page.
  bool bulk_mid_huge_page() const;
  bool urgent_work_pending() const;
  bool tokens_available();
  void charge(uint64_t bytes);
  void fail(Status s);

  SendState& state_;
  SendCounters& counters_;
  const Layout& layout_;
  bool owns_urgent_;
  Lane urgent_;
  std::vector<Lane> bulk_;
  std::array<Request, kQueue> queue_{};
  // With session keys on the urgent channel: opens the destination's sealed page requests.
  std::unique_ptr<MarkerOpener> request_opener_;
  MarkerTamperSite request_tamper_;  // test-only (marker_tamper.h)
  size_t queue_head_ = 0, queue_tail_ = 0;
  double bandwidth_share_;
  std::chrono::steady_clock::time_point bucket_time_{};
  double tokens_ = 0;
  std::atomic<bool> failed_{false};
  Status error_;
};

// True if the 4 KiB target page is all zeros (early exit on the first non-zero word).
bool is_zero_target_page(const uint8_t* p);

}  // namespace tern::engine
