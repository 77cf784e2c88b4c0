// IncomingMigration's implementation class, shared by the files that implement it: the session
// (incoming.cc) and postcopy recovery (incoming_recovery.cc).
//
// Threads: the public methods (start, cancel, shutdown, pause, recover, info, guest) from any
// thread; everything else on the control thread. Fields are the control thread's unless noted.
#pragma once

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/engine/control_link.h"
#include "dataplane/engine/fault_poller.h"
#include "dataplane/engine/receiver.h"
#include "dataplane/engine/recv_state.h"
#include "dataplane/engine/session_common.h"
#include "dataplane/migration.h"

namespace tern {

class IncomingMigration::Impl {
 public:
  Impl(GuestFactory factory, MigrationParameters params)
      : factory_(std::move(factory)), params_(params) {}
  ~Impl() {
    shutdown();
    if (thread_.joinable()) thread_.join();
  }

  Result<std::string> start(const std::string& uri);
  void cancel() {
    // Ignored while postcopy runs the guest here; in postcopy-paused it gives up the recovery.
    const MigrationStatus s = board_.get();
    if (s == MigrationStatus::kPostcopyActive || s == MigrationStatus::kPostcopyRecover) return;
    cancel_requested_.store(true);
  }
  void shutdown() {
    shutdown_requested_.store(true);
    cancel_requested_.store(true);
  }
  Status pause();
  Result<std::string> recover(const std::string& uri);
  MigrationInfo info() const;
  std::shared_ptr<Guest> guest() {
    std::lock_guard<std::mutex> lock(mu_);
    return guest_;
  }
  void on_notice(NoticeCallback cb) { notice_ = std::move(cb); }
  engine::StatusBoard board_;

 private:
  void run();
  Status migrate();
  Status accept();
  void notice(const Status& s) {
    if (notice_) notice_(s);
  }
  // The end of a migration that failed or was cancelled: tell the source, stop the guest if
  // postcopy had started it, publish the status.
  void end_session(const Status& s);
  // Stops a guest that postcopy started, without waiting on a page that will never come.
  void stop_lost_guest(Guest& g);
  // Drops everything of the last migration, so that the listener can take the next one.
  void reset_session();
  Status setup(const engine::ControlMessage& layout_msg);
  Status check_health();
  Status peer_reason(const Status& s);
  Status ack_rounds();
  Status enter_postcopy(const engine::ControlMessage& m);
  // At the switch to postcopy: which blocks land in the page cache (zero-copy, UFFDIO_CONTINUE)
  // and which in staging pages (UFFDIO_COPY); fills state_->page_cache, says why not by notice.
  void choose_placement();
  Status complete_precopy(const engine::ControlMessage& m);
  Status complete_postcopy();
  Status finish();
  void start_workers();
  void stop_workers();

  // Postcopy recovery (incoming_recovery.cc).
  // After a failure `s` of the session: ok once a source resumed the migration on a new link
  // (postcopy goes on), else why it ends (`s`, the peer's reason, or the recovery's end).
  Status survive(const Status& s);
  // The link broke or was paused on purpose (not a protocol error, not our own failure).
  bool link_broken() const;
  // postcopy-paused until a source resumes on a listener migrate-recover armed; ok then.
  Status pause_until_recovered(const Status& cause);
  // Takes a migrate-recover request, if any: closes the last recovery listener, opens the new
  // one, and answers the caller.
  void serve_recover_request();
  // A source connected to the recovery listener: check it continues this migration, send the
  // received bitmaps, restart the workers on the new channels.
  Status resync(ChannelSet channels);

  GuestFactory factory_;
  const MigrationParameters params_;
  NoticeCallback notice_;  // set before start()
  std::string address_;
  std::string listen_uri_;
  std::string transport_name_;
  std::string encryption_;  // of the channels accepted last (mu_): Transport::encryption
  std::unique_ptr<Transport> transport_;
  ChannelSet channels_;
  std::unique_ptr<engine::ControlLink> link_;
  std::shared_ptr<Guest> guest_;              // written by the control thread under mu_
  std::unique_ptr<engine::RecvState> state_;  // written by the control thread under mu_
  std::unique_ptr<Userfault> uffd_;
  std::vector<std::unique_ptr<engine::ReceiverPoller>> receivers_;
  std::unique_ptr<engine::FaultPoller> faults_;
  std::vector<std::unique_ptr<Worker>> workers_;
  std::thread thread_;
  std::atomic<bool> cancel_requested_{false};    // local cancel (or shutdown)
  std::atomic<bool> shutdown_requested_{false};  // ends postcopy too
  std::atomic<bool> pause_requested_{false};     // migrate-pause (any thread)
  bool accepted_ = false;  // the current migration got past accept()
  uint32_t rounds_acked_ = 0;
  bool postcopy_ = false;
  bool precopy_only_ = false;  // the layout said no postcopy follows (kLayoutPrecopyOnly)
  uint32_t zero_copy_blocks_ = 0;  // blocks placed from the page cache in postcopy
  size_t channel_count_ = 0;   // channels of the migration (a resuming source opens as many)
  uint64_t recovery_token_ = 0;  // from kPostcopyStart: a resuming source must present it

  // migrate-recover's mailbox: the caller leaves a URI and waits for the control thread's
  // answer (the listening URI or why not).
  std::mutex recover_mu_;
  std::condition_variable recover_cv_;
  std::optional<std::string> recover_uri_;               // guarded by recover_mu_
  std::optional<Result<std::string>> recover_result_;  // guarded by recover_mu_
  std::atomic<uint64_t> pauses_{0}, recoveries_{0};

  mutable std::mutex mu_;
  std::chrono::steady_clock::time_point start_time_{};
  uint64_t setup_time_ms_ = 0, total_time_ms_ = 0, downtime_ms_ = 0;
};

}  // namespace tern
