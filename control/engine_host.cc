#include "control/engine_host.h"

#include "control/log.h"

namespace tern::control {
namespace {

bool in_progress(MigrationStatus s) { return s != MigrationStatus::kNone && !is_terminal(s); }

}  // namespace

Result<std::unique_ptr<EngineHost>> EngineHost::source(std::unique_ptr<Guest> guest) {
  std::unique_ptr<EngineHost> h(new EngineHost(Role::kSource));
  if (!guest->running()) {
    if (Status s = guest->start(); !s) return s;
  }
  h->guest_ = std::move(guest);
  h->limiter_ = std::make_unique<DirtyLimiter>(*h->guest_);
  return h;
}

Status EngineHost::replace_lost_guest() {
  Status lost = guest_->failure();
  if (lost.is_ok() || !next_guest_) return Status::ok();
  std::unique_ptr<Guest> next = next_guest_();
  if (!next)
    return {Code::kUnavailable, "the guest is lost (" + lost.message() +
                                    "); attach a new VMM to this ternd, then migrate again"};
  if (!next->running())
    if (Status s = next->start(); !s) return s;
  // The last migration and the limiter borrow the lost guest: both go first (joining threads).
  out_.reset();
  limiter_.reset();
  guest_ = std::move(next);
  limiter_ = std::make_unique<DirtyLimiter>(*guest_);
  log(LogLevel::kInfo, "guest running: " + guest_->describe() + " (replaces the lost one)");
  return Status::ok();
}

std::unique_ptr<EngineHost> EngineHost::destination(GuestFactory factory) {
  std::unique_ptr<EngineHost> h(new EngineHost(Role::kDestination));
  h->factory_ = std::move(factory);
  return h;
}

EngineHost::~EngineHost() { cancel_and_wait(); }

void EngineHost::cancel_and_wait() {
  // Shutdown ends a migration in any state, postcopy included; each side tells its peer.
  if (out_) out_->shutdown();
  if (in_) in_->shutdown();
  if (out_ && in_progress(out_->info().status)) (void)out_->wait(std::chrono::seconds(30));
  if (in_ && in_progress(in_->info().status)) (void)in_->wait(std::chrono::seconds(30));
}

void EngineHost::set_status_sink(StatusSink sink) {
  std::lock_guard<std::mutex> lock(sink_mu_);
  sink_ = std::move(sink);
}

void EngineHost::forward(MigrationStatus s, const std::string& detail) {
  std::lock_guard<std::mutex> lock(sink_mu_);
  if (sink_) sink_(s, detail);
}

Status EngineHost::migrate(const std::string& uri, const MigrationCapabilities& caps,
                           const MigrationParameters& params) {
  if (out_) {
    MigrationStatus s = out_->info().status;
    if (in_progress(s)) {
      return {Code::kInvalidArgument, "there's a migration process in progress (status " +
                                          std::string(status_name(s)) + ")"};
    }
    if (s == MigrationStatus::kCompleted) {
      return {Code::kInvalidArgument,
              "the guest has already migrated away (the last migration completed)"};
    }
  }
  if (Status s = replace_lost_guest(); !s) return s;
  if (!guest_->running()) {
    return {Code::kUnavailable, "the guest is not running"};
  }
  {
    std::lock_guard<std::mutex> lock(check_mu_);
    verification_.reset();
  }
  auto next = std::make_unique<OutgoingMigration>(*guest_, caps, params, limiter_.get());
  next->on_status([this](MigrationStatus s, const std::string& d) { forward(s, d); });
  // Keep the previous (terminal) migration alive until the new one replaces it.
  std::swap(out_, next);
  return out_->start(uri);
}

Result<std::string> EngineHost::migrate_incoming(const std::string& uri,
                                                 const MigrationParameters& params) {
  if (in_) {
    // A destination whose last migration failed or was cancelled may listen anew (the old
    // listener closes first, so the same address works); one that waits, migrates or holds
    // the migrated guest may not.
    const MigrationStatus s = in_->info().status;
    if (s == MigrationStatus::kNone || in_progress(s))
      return Status(Code::kInvalidArgument, "already waiting for a migration on " +
                                                incoming_uri_ + " (status " + status_name(s) +
                                                "; one incoming migration per ternd)");
    if (s == MigrationStatus::kCompleted)
      return Status(Code::kInvalidArgument,
                    "a guest has already migrated here (the last incoming migration completed)");
    in_.reset();
    incoming_uri_.clear();
  }
  auto next = std::make_unique<IncomingMigration>(factory_, params);
  next->on_status([this, in = next.get()](MigrationStatus s, const std::string& d) {
    if (s == MigrationStatus::kCompleted) check_completed(*in);
    forward(s, d);
  });
  next->on_notice([](const Status& n) {
    log(n.is_ok() ? LogLevel::kInfo : LogLevel::kWarn, n.message());
  });
  Result<std::string> listening = next->start(uri);
  if (!listening) return listening.status();
  in_ = std::move(next);
  incoming_uri_ = *listening;
  return listening;
}

Status EngineHost::start_postcopy() {
  if (!out_) return {Code::kInvalidArgument, "no migration is running"};
  return out_->start_postcopy();
}

Status EngineHost::cancel() {
  // QEMU's migrate_cancel succeeds when there is nothing to cancel; so does this.
  if (out_) out_->cancel();
  if (in_) in_->cancel();
  return Status::ok();
}

Status EngineHost::pause_postcopy() {
  if (out_) return out_->pause();
  if (in_) return in_->pause();
  return {Code::kInvalidArgument, "migrate-pause works in postcopy only (no migration)"};
}

Result<std::string> EngineHost::recover(const std::string& uri) {
  if (!in_)
    return Status(Code::kInvalidArgument,
                  "migrate-recover needs a postcopy-paused migration (no incoming migration)");
  Result<std::string> listening = in_->recover(uri);
  if (listening) incoming_uri_ = *listening;
  return listening;
}

Status EngineHost::resume(const std::string& uri) {
  if (!out_)
    return {Code::kInvalidArgument, "resume needs a postcopy-paused migration (no migration)"};
  return out_->resume(uri);
}

MigrationInfo EngineHost::info() const {
  if (out_) return out_->info();
  if (in_) return in_->info();
  return MigrationInfo{};
}

std::shared_ptr<Guest> EngineHost::guest() {
  // The source's guest lives as long as this host (a non-owning handle); a re-armed
  // destination may replace its guest, so it is held while used.
  if (role_ == Role::kSource) return std::shared_ptr<Guest>(std::shared_ptr<Guest>(), guest_.get());
  return in_ ? in_->shared_guest() : nullptr;
}

void EngineHost::check_completed(IncomingMigration& in) {
  std::lock_guard<std::mutex> lock(check_mu_);
  if (completion_checked_) return;
  completion_checked_ = true;
  Guest* guest = in.guest();
  if (guest == nullptr || self_check(*guest) == nullptr) return;
  Result<VerifyReport> v = check_guest(*guest);
  if (!v) {
    log(LogLevel::kError, "checking the migrated guest's pages: " + v.status().to_string());
    return;
  }
  if (v->mismatches || v->touched_mismatches)
    log(LogLevel::kError, "the migrated guest has " + std::to_string(v->mismatches) +
                              " bad pages and " + std::to_string(v->touched_mismatches) +
                              " bad first touches: " + v->first_mismatch);
  verification_ = *v;
}

Result<GuestInfo> EngineHost::guest_info(bool verify) {
  GuestInfo g;
  std::shared_ptr<Guest> guest = this->guest();
  MigrationInfo mi = info();
  // A query that overtakes the completion callback waits for (or runs) the check, so that a
  // destination reporting `completed` always has it.
  if (in_ && mi.status == MigrationStatus::kCompleted) check_completed(*in_);
  std::lock_guard<std::mutex> lock(check_mu_);
  if (verify) {
    if (guest == nullptr) {
      return Status(Code::kUnavailable, "no guest yet: the destination is waiting for a source");
    }
    if (in_progress(mi.status)) {
      return Status(Code::kUnavailable, std::string("cannot verify while migrating (status ") +
                                            status_name(mi.status) + ")");
    }
    if (role_ == Role::kDestination && mi.status != MigrationStatus::kCompleted) {
      return Status(Code::kUnavailable,
                    std::string("the destination guest is incomplete (status ") +
                        status_name(mi.status) + "); nothing to verify");
    }
    // The engine no longer drives the guest at this point: check_guest pauses and resumes it.
    Result<VerifyReport> v = check_guest(*guest);
    if (!v) return v.status();
    verification_ = *v;
  }
  if (guest != nullptr) {
    g.present = true;
    g.description = guest->describe();
    g.running = guest->running();
    if (const SelfCheck* check = self_check(*guest)) g.counters = check->verify_counters();
  }
  g.verification = verification_;
  return g;
}

Status EngineHost::dirty_limit_usable() const {
  if (role_ != Role::kSource)
    return {Code::kInvalidArgument,
            "the dirty limit applies to the source guest; this ternd is a destination"};
  if (!limiter_->supported())
    return {Code::kUnavailable, "the guest (" + guest_->describe() + ") has no dirty ring"};
  return Status::ok();
}

Status EngineHost::set_vcpu_dirty_limit(std::optional<uint32_t> cpu, uint64_t mbps) {
  if (Status s = dirty_limit_usable(); !s) return s;
  if (out_ && in_progress(out_->info().status) && out_->info().stats.dirty_limit_active)
    return {Code::kInvalidArgument,
            "the migration's dirty-limit capability holds the limit until it ends"};
  return limiter_->set(cpu, mbps);
}

Status EngineHost::cancel_vcpu_dirty_limit(std::optional<uint32_t> cpu) {
  if (Status s = dirty_limit_usable(); !s) return s;
  if (out_ && in_progress(out_->info().status) && out_->info().stats.dirty_limit_active)
    return {Code::kInvalidArgument,
            "the migration's dirty-limit capability holds the limit until it ends"};
  return limiter_->cancel(cpu);
}

Result<std::vector<VcpuDirtyLimit>> EngineHost::query_vcpu_dirty_limit() const {
  if (Status s = dirty_limit_usable(); !s) return s;
  return limiter_->query();
}

std::vector<std::string> EngineHost::transports() const { return transport_names(); }

DefaultTransport EngineHost::default_transport() const { return choose_default_transport(); }

}  // namespace tern::control
