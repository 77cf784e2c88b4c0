// OutgoingMigration's implementation class, shared by the files that implement it: the
// session (outgoing.cc) and postcopy recovery (outgoing_recovery.cc).
//
// Threads: the public methods (start, start_postcopy, cancel, shutdown, pause, resume, info)
// from any thread; everything else on the control thread. Fields are the control thread's
// unless noted.
#pragma once

#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/dirty_limit.h"
#include "dataplane/engine/control_link.h"
#include "dataplane/engine/free_page_filter.h"
#include "dataplane/engine/send_state.h"
#include "dataplane/engine/sender.h"
#include "dataplane/engine/session_common.h"
#include "dataplane/migration.h"

namespace tern {

class OutgoingMigration::Impl {
 public:
  Impl(Guest& guest, MigrationCapabilities caps, MigrationParameters params,
       DirtyLimiter* limiter)
      : guest_(guest), caps_(caps), params_(params), limiter_(limiter) {}
  ~Impl() {
    shutdown();
    if (thread_.joinable()) thread_.join();
  }

  Status start(const std::string& uri);
  Status start_postcopy() {
    if (!caps_.postcopy_ram)
      return Status(Code::kInvalidArgument, "postcopy-ram capability is not enabled");
    MigrationStatus s = board_.get();
    if (s != MigrationStatus::kActive && s != MigrationStatus::kSetup)
      return Status(Code::kInvalidArgument,
                    std::string("cannot start postcopy in state ") + status_name(s));
    postcopy_requested_.store(true);
    return Status::ok();
  }
  void cancel() {
    // Ignored once postcopy runs the guest on the destination; in postcopy-paused it gives up
    // the recovery.
    const MigrationStatus s = board_.get();
    if (is_terminal(s) || s == MigrationStatus::kNone || s == MigrationStatus::kPostcopyActive ||
        s == MigrationStatus::kPostcopyRecover)
      return;
    cancel_requested_.store(true);
  }
  void shutdown() {
    shutdown_requested_.store(true);
    cancel();
  }
  Status pause();
  Status resume(const std::string& uri);
  MigrationInfo info() const;
  engine::StatusBoard board_;

 private:
  void run();
  Status migrate();
  // Opens the migration's channels to address_ (a fresh session id) and the control link.
  Status connect_channels();
  Status connect_and_setup();
  Status run_round(uint32_t round);
  Status wait_for(ControlType type, uint32_t round, std::chrono::milliseconds timeout,
                  engine::ControlMessage* out = nullptr);
  Status check_health();
  Status precopy_switchover();
  Status postcopy_switch();
  // Postcopy after the switch: the final round and completion, surviving broken links.
  Status postcopy_run();
  Status postcopy_finish(bool* acked);

  // Postcopy recovery (outgoing_recovery.cc).
  // The link broke or was paused on purpose (not a protocol error, not our own failure).
  bool link_broken() const;
  // A kError the destination sent before its link closed (read for up to 500 ms until the
  // control channel closes), or ok when there is none or the pause was ours.
  Status peer_verdict();
  // postcopy-paused until a resume connects and resyncs (ok), or the end (shutdown, cancel).
  Status pause_until_resumed(const Status& cause);
  // Connects the new link, presents the token, applies the destination's received bitmaps
  // and restarts the workers.
  Status reconnect(engine::OpenedTransport opened);
  void start_workers();
  // A sender for `urgent` (or nullptr) and `lanes`, on `worker`, started.
  void add_sender(Channel* urgent, std::vector<engine::SenderPoller::BulkChannel> lanes,
                  double bandwidth_share, std::unique_ptr<Worker> worker);
  void stop_workers();
  void update_rate();
  // A dirty sync: with S5, the hints are cleared first, then the dirty log applied.
  uint64_t sync_dirty() {
    return filter_ ? filter_->sync() : guest_.collect_dirty(state_->dirty);
  }
  void consider_dirty_limit(uint64_t dirtied_pages, uint64_t sent_bytes);
  void release_dirty_limit();

  Guest& guest_;
  const MigrationCapabilities caps_;
  const MigrationParameters params_;
  // Dirty limit (S4): borrowed from the guest's owner or owned here; limits found before the
  // capability turned it on are given back at the end. Control thread only, but for
  // limit_on_, which info() reads.
  DirtyLimiter* limiter_;
  std::unique_ptr<DirtyLimiter> own_limiter_;
  std::vector<VcpuDirtyLimit> saved_limits_;
  uint32_t busy_rounds_ = 0;  // rounds in which the guest dirtied over half of what was sent
  std::atomic<bool> limit_on_{false};
  std::atomic<bool> limit_released_{false};
  std::atomic<uint64_t> final_throttle_us_{0}, final_ring_full_us_{0};  // at release
  std::atomic<bool> forced_{false};
  std::string address_;
  std::unique_ptr<Transport> transport_;
  ChannelSet channels_;
  std::unique_ptr<engine::ControlLink> link_;
  std::unique_ptr<engine::SendState> state_;
  // S5, with the x-free-page-hint capability: created with state_, before the first round.
  std::unique_ptr<engine::FreePageFilter> filter_;
  engine::SendCounters counters_;
  std::vector<std::unique_ptr<engine::SenderPoller>> senders_;
  std::vector<std::unique_ptr<Worker>> workers_;
  Layout layout_;
  std::thread thread_;
  std::atomic<bool> postcopy_requested_{false};
  std::atomic<bool> cancel_requested_{false};
  std::atomic<bool> shutdown_requested_{false};  // ends postcopy too (ternd exits)
  std::atomic<bool> pause_requested_{false};     // migrate-pause (any thread)
  uint64_t recovery_token_ = 0;
  std::chrono::steady_clock::time_point postcopy_start_time_{};  // guest paused for the switch  // sent in kPostcopyStart; a resume presents it
  // migrate resume=true's mailbox: the transport opened for the URI, taken by the control
  // thread while paused. Guarded by resume_mu_.
  std::mutex resume_mu_;
  std::optional<engine::OpenedTransport> resume_;
  std::atomic<uint64_t> pauses_{0}, recoveries_{0}, missing_at_resume_{0};
  bool paused_by_us_ = false;
  bool postcopy_started_ = false;
  bool peer_page_runs_ = false;  // the layout ack said kLayoutAckPageRuns (control thread)
  uint32_t round_ = 0;

  // Statistics written by the control thread, read by info() under mu_.
  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point start_time_{};
  uint64_t setup_time_ms_ = 0, downtime_ms_ = 0, total_time_ms_ = 0, expected_downtime_ms_ = 0;
  uint64_t dirty_sync_count_ = 0, dirty_pages_rate_ = 0;
  double mbps_ = 0;
  uint64_t total_bytes_ = 0;
  uint64_t counters_discarded_ = 0;
  std::string transport_name_;
  std::string encryption_;  // of the channels connected last (mu_): Transport::encryption
  std::chrono::steady_clock::time_point rate_time_{};
  uint64_t rate_bytes_ = 0;
};

}  // namespace tern
