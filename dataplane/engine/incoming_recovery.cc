// Postcopy recovery on the destination. When the link breaks in postcopy (a channel's EOF,
// reset or error, a peer silent past __io.github.tern_postcopy-peer-timeout, or migrate-pause) the broken
// channels are closed and the migration is postcopy-paused: the guest keeps running on the
// pages it has, a fault poller of its own still reads faults (recording them; pages received
// as zero markers are placed) and vCPUs that touch a missing page sleep in the kernel. Then
// migrate-recover arms a listener; the source that connects must present the token of
// kPostcopyStart; this side sends its received bitmaps (the authority on what is missing),
// restarts its workers on the new channels and requests every page a vCPU waits on again.
#include <thread>

#include "dataplane/engine/incoming_impl.h"
#include "dataplane/engine/resync.h"

namespace tern {

using engine::ControlLink;
using engine::FaultPoller;
using engine::ReceiverPoller;
using Clock = std::chrono::steady_clock;

Status IncomingMigration::Impl::pause() {
  if (Status s = engine::can_pause(board_.get()); !s.is_ok()) return s;
  pause_requested_.store(true);
  return Status::ok();
}

Result<std::string> IncomingMigration::Impl::recover(const std::string& uri) {
  const MigrationStatus s = board_.get();
  if (s != MigrationStatus::kPostcopyPaused)
    return Status(Code::kInvalidArgument,
                  std::string("migrate-recover needs a postcopy-paused migration (status ") +
                      status_name(s) + ")");
  std::unique_lock<std::mutex> lock(recover_mu_);
  recover_uri_ = uri;
  recover_result_.reset();
  // The control thread looks at the mailbox every 200 ms while paused.
  if (!recover_cv_.wait_for(lock, std::chrono::seconds(10),
                            [&] { return recover_result_.has_value(); })) {
    recover_uri_.reset();
    return Status(Code::kTimeout, "the migration did not take the recovery request (status " +
                                      std::string(status_name(board_.get())) + ")");
  }
  Result<std::string> r = std::move(*recover_result_);
  recover_result_.reset();
  return r;
}

bool IncomingMigration::Impl::link_broken() const {
  if (pause_requested_.load()) return true;
  return engine::link_broken(link_.get(), channels_);
}

Status IncomingMigration::Impl::survive(const Status& s) {
  stop_workers();
  if (!postcopy_ || shutdown_requested_.load()) return peer_reason(s);
  if (pause_requested_.load()) return pause_until_recovered(s);
  // A source that gives up says why on the control channel before it closes: that ends it.
  Status reason = peer_reason(s);
  if (reason.message() != s.message() || !engine::breaks_link(s) || !link_broken()) return reason;
  return pause_until_recovered(s);
}

void IncomingMigration::Impl::serve_recover_request() {
  std::optional<std::string> uri;
  {
    std::lock_guard<std::mutex> lock(recover_mu_);
    uri = std::exchange(recover_uri_, std::nullopt);
  }
  if (!uri) return;
  transport_.reset();  // the last recovery listener closes first: the same address works
  Result<std::string> answer = Status(Code::kInternal, "no answer");
  auto opened = engine::open_transport(*uri, params_);
  if (!opened) {
    answer = opened.status();
  } else {
    answer = opened->transport->listen(opened->address);
    if (answer) {
      transport_ = std::move(opened->transport);
      listen_uri_ = *answer;
      std::lock_guard<std::mutex> lock(mu_);
      transport_name_ = opened->name;
      notice(Status(Code::kOk, "postcopy-paused: waiting for the source to resume on " +
                                   listen_uri_));
    }
  }
  {
    std::lock_guard<std::mutex> lock(recover_mu_);
    recover_result_ = std::move(answer);
  }
  recover_cv_.notify_all();
}

Status IncomingMigration::Impl::pause_until_recovered(const Status& cause) {
  pause_requested_.store(false);
  pauses_.fetch_add(1);
  // The broken link goes: the source sees its channels close (if it has not yet).
  workers_.clear();
  receivers_.clear();
  faults_.reset();
  link_.reset();
  channels_.clear();
  // The guest keeps running: faults are still read and recorded (requested once a link is
  // back), and pages received as zero markers placed. The worker sleeps on the userfaultfd.
  auto watch = [&] {
    faults_ = std::make_unique<FaultPoller>(*state_, nullptr);
    faults_->enable();
    workers_.push_back(std::make_unique<Worker>("tern-urgent", -1, urgent_backoff()));
    workers_.back()->add(faults_.get());
    workers_.back()->start();
  };
  watch();
  Status why = cause;
  while (true) {
    board_.set(MigrationStatus::kPostcopyPaused,
               "postcopy paused: " + why.to_string() +
                   "; the guest runs on the pages it has: migrate-recover here, then migrate "
                   "with resume on the source");
    notice(Status(Code::kIo, "postcopy paused: " + why.to_string()));
    while (true) {
      if (shutdown_requested_.load())
        return Status(Code::kUnavailable, "the destination ternd is shutting down");
      if (cancel_requested_.load())
        return Status(Code::kCancelled, "migrate_cancel gave up the recovery");
      serve_recover_request();
      if (!transport_) {
        std::this_thread::sleep_for(std::chrono::milliseconds(20));
        continue;
      }
      auto chans = transport_->accept(std::chrono::milliseconds(200));
      for (const Status& r : transport_->take_rejected()) notice(r);
      if (chans) {
        why = resync(std::move(*chans));
        break;
      }
      if (chans.status().code() != Code::kTimeout) {
        notice(Status(Code::kIo, "recovery listener: " + chans.status().to_string()));
        transport_.reset();
      }
    }
    if (why.is_ok()) {
      recoveries_.fetch_add(1);
      std::lock_guard<std::mutex> lock(recover_mu_);
      if (recover_uri_) {  // came while resyncing: nothing to recover any more
        recover_uri_.reset();
        recover_result_ = Status(Code::kInvalidArgument, "the migration has recovered already");
        recover_cv_.notify_all();
      }
      return Status::ok();
    }
    // The attempt failed (a second break, a foreign source): back to paused, still listening.
    workers_.clear();
    receivers_.clear();
    faults_.reset();
    link_.reset();
    channels_.clear();
    pause_requested_.store(false);
    watch();
  }
}

Status IncomingMigration::Impl::resync(ChannelSet channels) {
  board_.set(MigrationStatus::kPostcopyRecover);
  channels_ = std::move(channels);
  if (channels_.size() != channel_count_)
    return Status(Code::kProtocol, "a source resumed with " + std::to_string(channels_.size()) +
                                       " channels; the migration has " +
                                       std::to_string(channel_count_));
  link_ = std::make_unique<ControlLink>(channels_[kControlChannel].get(),
                                       engine::LinkSide::kDestination);
  const auto deadline = Clock::now() + params_.connect_timeout;
  std::optional<engine::ControlMessage> m;
  while (!(m = link_->poll())) {
    if (!link_->error().is_ok()) return link_->error();
    if (shutdown_requested_.load() || pause_requested_.load())
      return Status(Code::kIo, "the recovery was interrupted");
    if (Clock::now() > deadline) return Status(Code::kTimeout, "the source did not resume");
    link_->wait(std::chrono::milliseconds(5));
  }
  if (Status s = engine::check_resume(*m, recovery_token_); !s.is_ok()) return s;
  // The received bitmaps are stable: only the receivers (stopped) mark pages received.
  for (uint32_t b = 0; b < state_->blocks.size(); ++b)
    if (Status s = link_->send(ControlType::kReceivedBitmap, b,
                               engine::encode_received(state_->received.block(b)));
        !s.is_ok())
      return s;
  if (Status s = link_->send(ControlType::kResumeAck); !s.is_ok()) return s;
  workers_.clear();  // the paused fault watcher
  faults_ = std::make_unique<FaultPoller>(*state_, channels_[kUrgentChannel].get());
  faults_->enable();
  faults_->request_again();  // requests lost with the old link, and faults read while paused
  receivers_.clear();
  for (size_t c = kUrgentChannel; c < channels_.size(); ++c) {
    receivers_.push_back(std::make_unique<ReceiverPoller>(*state_, channels_[c].get()));
    receivers_.back()->enter_postcopy();
  }
  start_workers();
  link_->enable_keepalive(engine::kKeepaliveInterval, params_.postcopy_peer_timeout);
  board_.set(MigrationStatus::kPostcopyActive);
  return Status::ok();
}

}  // namespace tern
