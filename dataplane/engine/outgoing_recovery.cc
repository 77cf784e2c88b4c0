// Postcopy recovery on the source. When the link breaks in postcopy (a channel's EOF, reset
// or error, a destination silent past __io.github.tern_postcopy-peer-timeout, or migrate-pause) the workers
// stop, the broken channels close and the migration is postcopy-paused: the guest stays
// paused here and every bitmap is kept. migrate with resume=true connects a new link to the
// destination's recovery listener and presents the token of kPostcopyStart; the destination's
// received bitmaps then say exactly which host pages are missing, and only those are sent
// (requests in flight come again from the destination). A failed attempt leaves it paused.
#include <thread>

#include "dataplane/engine/outgoing_impl.h"
#include "dataplane/engine/resync.h"

namespace tern {

using engine::ControlLink;
using Clock = std::chrono::steady_clock;

Status OutgoingMigration::Impl::pause() {
  if (Status s = engine::can_pause(board_.get()); !s.is_ok()) return s;
  pause_requested_.store(true);
  return Status::ok();
}

Status OutgoingMigration::Impl::resume(const std::string& uri) {
  const MigrationStatus s = board_.get();
  if (s != MigrationStatus::kPostcopyPaused)
    return Status(Code::kInvalidArgument,
                  std::string("resume needs a postcopy-paused migration (status ") +
                      status_name(s) + ")");
  auto opened = engine::open_transport(uri, params_);
  if (!opened) return opened.status();
  std::lock_guard<std::mutex> lock(resume_mu_);
  resume_ = std::move(*opened);
  return Status::ok();
}

bool OutgoingMigration::Impl::link_broken() const {
  if (pause_requested_.load()) return true;
  return engine::link_broken(link_.get(), channels_);
}

Status OutgoingMigration::Impl::peer_verdict() {
  if (!link_ || pause_requested_.load()) return Status::ok();
  const auto deadline = Clock::now() + std::chrono::milliseconds(500);
  while (Clock::now() < deadline) {
    while (auto m = link_->poll())
      if (m->type == ControlType::kError)
        return Status(Code::kProtocol, "destination failed: " + m->text());
    if (!link_->error().is_ok()) break;
    link_->wait(std::chrono::milliseconds(5));
  }
  return Status::ok();
}

Status OutgoingMigration::Impl::pause_until_resumed(const Status& cause) {
  Status why = cause;
  while (true) {
    pause_requested_.store(false);
    pauses_.fetch_add(why.is_ok() ? 0 : 1);
    // The broken link goes (the destination sees its channels close). Workers are stopped.
    senders_.clear();
    workers_.clear();
    link_.reset();
    channels_.clear();
    transport_.reset();
    for (uint32_t k = 0; k < state_->bulk_channels; ++k) {
      state_->slots[k].in_progress.store(0);
      state_->slots[k].raised.store(false);
    }
    board_.set(MigrationStatus::kPostcopyPaused,
               "postcopy paused: " + why.to_string() +
                   "; the guest stays paused here: migrate-recover on the destination, then "
                   "migrate with resume");
    std::optional<engine::OpenedTransport> next;
    while (!next) {
      if (shutdown_requested_.load())
        return Status(Code::kUnavailable, "the source ternd is shutting down");
      if (cancel_requested_.load())
        return Status(Code::kUnavailable, "migrate_cancel gave up the recovery");
      {
        std::lock_guard<std::mutex> lock(resume_mu_);
        next = std::exchange(resume_, std::nullopt);
      }
      if (!next) std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    board_.set(MigrationStatus::kPostcopyRecover);
    why = reconnect(std::move(*next));
    if (why.is_ok()) {
      recoveries_.fetch_add(1);
      return Status::ok();
    }
    stop_workers();
    if (why.code() == Code::kProtocol && !link_broken()) {
      // The peer refused: say so, stay paused (the user may resume elsewhere or cancel).
      why = Status(Code::kIo, "resume refused: " + why.message());
    }
  }
}

Status OutgoingMigration::Impl::reconnect(engine::OpenedTransport opened) {
  transport_ = std::move(opened.transport);
  address_ = opened.address;
  {
    std::lock_guard<std::mutex> lock(mu_);
    transport_name_ = opened.name;
  }
  if (Status s = connect_channels(); !s.is_ok()) return s;
  if (Status s = link_->send(ControlType::kResume, 0, engine::encode_token(recovery_token_));
      !s.is_ok())
    return s;
  // The destination's received bitmaps, one per block, then kResumeAck.
  engine::ResyncIntake intake(state_->dirty);
  const auto deadline = Clock::now() + params_.connect_timeout;
  while (true) {
    if (shutdown_requested_.load() || pause_requested_.load())
      return Status(Code::kIo, "the recovery was interrupted");
    std::optional<engine::ControlMessage> m = link_->poll();
    if (!m) {
      if (!link_->error().is_ok()) return link_->error();
      if (Clock::now() > deadline)
        return Status(Code::kTimeout, "the destination did not answer the resume");
      link_->wait(std::chrono::milliseconds(5));
      continue;
    }
    auto done = intake.take(*m);
    if (!done) return done.status();
    if (*done) break;
  }
  missing_at_resume_.store(intake.missing());
  for (RamBlock* b : guest_.ram())
    if (Status s = transport_->register_memory(b->base(), b->size()); !s.is_ok()) return s;
  start_workers();
  link_->enable_keepalive(engine::kKeepaliveInterval, params_.postcopy_peer_timeout);
  board_.set(MigrationStatus::kPostcopyActive);
  return Status::ok();
}

}  // namespace tern
