// OutgoingMigration: the source's control thread. It connects, announces the layout, runs
// dirty rounds (the workers send; this thread syncs dirty pages between rounds and decides
// when to switch over), and switches to postcopy on request. A postcopy link that breaks
// pauses the migration until it is resumed on a new link (outgoing_recovery.cc).
#include "dataplane/engine/outgoing_impl.h"

#include <cstring>
#include <thread>

#include "dataplane/engine/resync.h"

namespace tern {

using engine::ControlLink;
using engine::ControlMessage;
using engine::SendState;
using engine::SenderPoller;
using engine::ms_since;
using engine::seconds_since;
using engine::worker_count;
using Clock = std::chrono::steady_clock;

Status OutgoingMigration::Impl::start(const std::string& uri) {
  if (board_.get() != MigrationStatus::kNone)
    return Status(Code::kInvalidArgument, "a migration was already started on this guest");
  if (caps_.postcopy_preempt && !caps_.postcopy_ram)
    return Status(Code::kInvalidArgument, "postcopy-preempt needs the postcopy-ram capability");
  if (params_.multifd_channels == 0 || params_.multifd_channels > 64)
    return Status(Code::kInvalidArgument, "multifd-channels must be between 1 and 64");
  if (params_.chunk_size < kTargetPageSize || params_.chunk_size % kTargetPageSize ||
      params_.chunk_size > kHugePage)
    return Status(Code::kInvalidArgument, "chunk size must be a multiple of 4 KiB up to 2 MiB");
  if (caps_.dirty_limit) {
    if (params_.vcpu_dirty_limit == 0)
      return Status(Code::kInvalidArgument, "vcpu-dirty-limit must be at least 1 MB/s");
    if (!limiter_) {
      own_limiter_ = std::make_unique<DirtyLimiter>(guest_);
      limiter_ = own_limiter_.get();
    }
    if (!limiter_->supported())
      return Status(Code::kInvalidArgument,
                    "the dirty-limit capability needs a guest with a dirty ring (" +
                        guest_.describe() + " has none)");
  }
  auto opened = engine::open_transport(uri, params_);
  if (!opened) return opened.status();
  transport_ = std::move(opened->transport);
  transport_name_ = opened->name;
  address_ = opened->address;
  layout_ = guest_.layout();
  total_bytes_ = layout_.total_bytes();
  start_time_ = Clock::now();
  board_.set(MigrationStatus::kSetup);
  thread_ = std::thread([this] { run(); });
  return Status::ok();
}

void OutgoingMigration::Impl::run() {
  Status s = migrate();
  if (state_) state_->stop.store(true);
  stop_workers();
  release_dirty_limit();
  // S5: the guest stops reporting before the dirty log stops (the log is what makes a report
  // safe to act on); a no-op if it stopped at the switch to postcopy.
  if (filter_) filter_->stop();
  {
    std::lock_guard<std::mutex> lock(mu_);
    total_time_ms_ = ms_since(start_time_);
  }
  if (s.is_ok()) {
    guest_.stop_dirty_log();
    board_.set(MigrationStatus::kCompleted);
    return;
  }
  if (link_ && s.code() != Code::kProtocol) {
    if (s.code() == Code::kCancelled)
      (void)link_->send_text(ControlType::kCancel, "cancelled by the source",
                             std::chrono::milliseconds(500));
    else if (link_->error().is_ok() || link_->error().code() == Code::kDenied)
      // A frame that failed authentication broke only what this side receives: the sealed
      // kError still tells the real destination why (an attacker cannot read or fake it).
      (void)link_->send_text(ControlType::kError, s.to_string(), std::chrono::milliseconds(500));
  }
  guest_.stop_dirty_log();
  // The source guest keeps running untouched, unless postcopy already moved it.
  if (paused_by_us_ && !postcopy_started_) (void)guest_.start();
  if (s.code() == Code::kCancelled) {
    board_.set(MigrationStatus::kCancelled);
  } else {
    std::string msg = s.to_string();
    if (postcopy_started_)
      msg += " (postcopy had started: the guest's memory is split between the hosts; the source "
             "stays paused)";
    board_.set(MigrationStatus::kFailed, msg);
  }
}

Status OutgoingMigration::Impl::connect_channels() {
  const uint32_t count = kFirstBulkChannel + params_.multifd_channels;
  auto chans =
      transport_->connect(address_, count, engine::random_u64(), params_.connect_timeout);
  if (!chans) return chans.status();
  channels_ = std::move(*chans);
  {
    std::lock_guard<std::mutex> lock(mu_);
    encryption_ = transport_->encryption();
  }
  if (channels_.size() != count)
    return Status(Code::kInternal, "transport returned " + std::to_string(channels_.size()) +
                                       " channels, asked for " + std::to_string(count));
  link_ = std::make_unique<ControlLink>(channels_[kControlChannel].get(),
                                       engine::LinkSide::kSource);
  return Status::ok();
}

Status OutgoingMigration::Impl::connect_and_setup() {
  if (Status s = connect_channels(); !s.is_ok()) return s;
  if (params_.page_integrity)
    for (const auto& c : channels_)
      if (c->keys() == nullptr)
        return Status(Code::kInvalidArgument,
                      "page integrity (__io.github.tern_page-integrity) needs session keys: the channels must be authenticated with a "
                          "pre-shared key (ternd --auth-key-file), or on rdma and dpdk with x509 (--tls-creds)");
  const uint32_t layout_flags = (caps_.postcopy_ram ? 0 : kLayoutPrecopyOnly) |
                                (params_.page_integrity ? kLayoutPageIntegrity : 0);
  if (Status s = link_->send(ControlType::kLayout, layout_flags, encode_layout(layout_)); !s.is_ok())
    return s;
  engine::ControlMessage ack;
  if (Status s = wait_for(ControlType::kLayoutAck, 0, std::chrono::seconds(60), &ack); !s.is_ok())
    return s;
  peer_page_runs_ = (ack.round & kLayoutAckPageRuns) != 0;
  if (params_.page_integrity && (ack.round & kLayoutAckPageIntegrity) == 0)
    return Status(Code::kProtocol, "the destination does not check page integrity "
                                       "(__io.github.tern_page-integrity): set it on the "
                                       "destination too, or off here");
  for (RamBlock* b : guest_.ram())
    if (Status s = transport_->register_memory(b->base(), b->size()); !s.is_ok()) return s;
  return Status::ok();
}

void OutgoingMigration::Impl::start_workers() {
  const uint32_t n = std::min(worker_count(params_), params_.multifd_channels);
  std::vector<int> cpus = engine::worker_cpus(params_, static_cast<int>(n), *transport_);
  std::vector<std::vector<SenderPoller::BulkChannel>> lanes(n);
  for (uint32_t k = 0; k < params_.multifd_channels; ++k)
    lanes[k % n].push_back({channels_[kFirstBulkChannel + k].get(), k});
  // With postcopy-preempt the urgent channel has a sender and a thread of its own (unpinned,
  // asleep until a request comes, then preempting whatever runs): an urgent page goes while
  // the bulk channels carry on (S1), and S3's raised pages finish on their bulk lanes. Without
  // it, or on a channel that cannot wake a sleeper when a request arrives (dpdk: a poll
  // timer), worker 0 serves requests between its bulk lanes' chunks or host pages.
  const bool own_urgent =
      caps_.postcopy_preempt && channels_[kUrgentChannel]->wakes_on_receive();
  // A worker without the urgent channel waits only for its send windows (kWaiting) and for
  // the next round (wake()): it need not spin long when idle, where the channels can wake it.
  const bool wakes = channels_[kFirstBulkChannel]->wakes_on_receive();
  for (uint32_t w = 0; w < n; ++w) {
    Channel* urgent = w == 0 && !own_urgent ? channels_[kUrgentChannel].get() : nullptr;
    add_sender(urgent, std::move(lanes[w]), 1.0 / n,
               std::make_unique<Worker>("tern-send" + std::to_string(w), cpus[w],
                                        wakes && !urgent ? bulk_backoff() : BackoffPolicy{}));
  }
  if (own_urgent)
    add_sender(channels_[kUrgentChannel].get(), {}, 0,
               std::make_unique<Worker>("tern-urgent", -1, urgent_backoff()));
}

void OutgoingMigration::Impl::add_sender(Channel* urgent,
                                         std::vector<SenderPoller::BulkChannel> lanes,
                                         double bandwidth_share, std::unique_ptr<Worker> worker) {
  senders_.push_back(std::make_unique<SenderPoller>(*state_, counters_, layout_, urgent,
                                                    std::move(lanes), bandwidth_share));
  workers_.push_back(std::move(worker));
  workers_.back()->add(senders_.back().get());
  workers_.back()->start();
}

void OutgoingMigration::Impl::stop_workers() {
  for (auto& w : workers_) w->stop();
}

Status OutgoingMigration::Impl::check_health() {
  // Once postcopy has started the guest runs on the destination: like QEMU, cancel is refused.
  if (shutdown_requested_.load())
    return Status(Code::kUnavailable, "the source ternd is shutting down");
  if (cancel_requested_.load() && !postcopy_started_) return Status(Code::kCancelled, "cancelled");
  if (postcopy_started_ && pause_requested_.load())
    return Status(Code::kIo, "migrate-pause on the source");
  for (auto& s : senders_)
    if (s->failed()) return s->error();
  if (Status k = link_->keepalive(); !k.is_ok()) return k;
  return guest_.failure();
}

// Waits for one control message of `type` (and `round`), failing on kError/kCancel from the
// destination, on a worker failure, on cancel, or after `timeout`.
Status OutgoingMigration::Impl::wait_for(ControlType type, uint32_t round,
                                         std::chrono::milliseconds timeout, ControlMessage* out) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    if (Status s = check_health(); !s.is_ok()) return s;
    while (auto m = link_->poll()) {
      if (m->type == ControlType::kError)
        return Status(Code::kProtocol, "destination failed: " + m->text());
      if (m->type == ControlType::kCancel)
        return Status(Code::kCancelled, "destination cancelled: " + m->text());
      if (m->type == type && (round == 0 || m->round == round)) {
        if (out) *out = std::move(*m);
        return Status::ok();
      }
    }
    if (!link_->error().is_ok()) return link_->error();
    if (Clock::now() > deadline)
      return Status(Code::kTimeout, "destination did not answer in time");
    update_rate();
    link_->wait(std::chrono::milliseconds(2));
  }
}

void OutgoingMigration::Impl::update_rate() {
  auto now = Clock::now();
  double dt = std::chrono::duration<double>(now - rate_time_).count();
  if (dt < 0.5) return;
  uint64_t bytes = counters_.bytes.load(std::memory_order_relaxed);
  std::lock_guard<std::mutex> lock(mu_);
  mbps_ = static_cast<double>(bytes - rate_bytes_) * 8 / dt / 1e6;
  rate_bytes_ = bytes;
  rate_time_ = now;
}

Status OutgoingMigration::Impl::run_round(uint32_t round) {
  round_ = round;
  state_->cursor.store(0, std::memory_order_relaxed);
  state_->round.store(round, std::memory_order_release);
  for (auto& w : workers_) w->wake();
  bool acked = false;
  while (true) {
    if (Status s = check_health(); !s.is_ok()) return s;
    // migrate-start-postcopy stops the precopy round early: unsent pages stay dirty.
    if (postcopy_requested_.load() && !state_->postcopy.load())
      state_->cursor.store(state_->total_host_pages, std::memory_order_relaxed);
    bool done = true;
    for (uint32_t k = 0; k < params_.multifd_channels; ++k)
      done &= state_->slots[k].round_done.load(std::memory_order_acquire) == round;
    if (done) break;
    while (auto m = link_->poll()) {
      if (m->type == ControlType::kError)
        return Status(Code::kProtocol, "destination failed: " + m->text());
      if (m->type == ControlType::kCancel)
        return Status(Code::kCancelled, "destination cancelled: " + m->text());
      // This round's ack can come before this loop sees every lane done: a lane marks its round
      // done right after posting the round end, and if this thread is descheduled between the
      // check above and this poll, the round end may reach the destination and its ack come
      // back meanwhile. Dropping it left wait_for() below waiting 120 s for an ack already
      // received ("destination did not answer in time"; seen over rdma under TCG, 1 run in 5).
      if (m->type == ControlType::kRoundAck && m->round == round) acked = true;
    }
    update_rate();
    link_->wait(std::chrono::milliseconds(1));
  }
  if (acked) return Status::ok();
  return wait_for(ControlType::kRoundAck, round, std::chrono::seconds(120));
}

Status OutgoingMigration::Impl::migrate() {
  if (Status s = connect_and_setup(); !s.is_ok()) return s;
  state_ = std::make_unique<SendState>(guest_.ram(), params_.multifd_channels);
  state_->chunk_size = params_.chunk_size;
  // Page integrity tags each host page on its own (no page runs): a page the guest writes
  // while it is sent then fails alone and comes again with the next round (page_integrity.h).
  state_->page_runs = peer_page_runs_ && !params_.page_integrity;
  state_->page_integrity = params_.page_integrity;
  state_->max_bandwidth.store(params_.max_bandwidth);
  // Dirty logging starts before the first full pass, so no write is missed, and before the
  // guest is asked for free pages (S5: a page reported free and then written must show up in
  // the dirty log).
  if (Status s = guest_.start_dirty_log(); !s.is_ok()) return s;
  state_->dirty.set_all();
  if (caps_.free_page_hint) {
    {
      std::lock_guard<std::mutex> lock(mu_);  // info() reads filter_
      filter_ = std::make_unique<engine::FreePageFilter>(guest_, *state_);
    }
    if (Status s = filter_->start(); !s.is_ok()) return s;
    // The first hints before the first pass: the pages already free are never sent.
    (void)filter_->sync();
  }
  start_workers();
  rate_time_ = Clock::now();
  {
    std::lock_guard<std::mutex> lock(mu_);
    setup_time_ms_ = ms_since(start_time_);
  }
  board_.set(MigrationStatus::kActive);

  for (uint32_t round = 1;; ++round) {
    auto t0 = Clock::now();
    uint64_t bytes0 = counters_.bytes.load();
    if (Status s = run_round(round); !s.is_ok()) return s;
    double dt = std::max(seconds_since(t0), 1e-6);
    double bandwidth = static_cast<double>(counters_.bytes.load() - bytes0) / dt;
    uint64_t dirtied = sync_dirty();
    uint64_t remaining = state_->dirty.dirty_bytes();
    uint64_t expected_ms =
        bandwidth > 0 ? static_cast<uint64_t>(static_cast<double>(remaining) / bandwidth * 1e3) : 0;
    {
      std::lock_guard<std::mutex> lock(mu_);
      ++dirty_sync_count_;
      dirty_pages_rate_ = static_cast<uint64_t>(static_cast<double>(dirtied) / dt);
      expected_downtime_ms_ = expected_ms;
    }
    if (postcopy_requested_.load()) return postcopy_switch();
    if (expected_ms <= params_.downtime_limit_ms) return precopy_switchover();
    if (round >= params_.max_rounds) {
      forced_.store(true);
      return precopy_switchover();
    }
    consider_dirty_limit(dirtied, counters_.bytes.load() - bytes0);
  }
}

// The dirty-limit capability turns the limit on for every vCPU once the guest has dirtied more
// than half of what a round sent, in two rounds: precopy alone would not catch up.
void OutgoingMigration::Impl::consider_dirty_limit(uint64_t dirtied_pages, uint64_t sent_bytes) {
  if (!caps_.dirty_limit || limit_on_.load()) return;
  if (dirtied_pages * kTargetPageSize > sent_bytes / 2) ++busy_rounds_;
  if (busy_rounds_ < 2) return;
  saved_limits_ = limiter_->query();
  (void)limiter_->set_period(std::chrono::milliseconds(params_.vcpu_dirty_limit_period_ms));
  if (Status s = limiter_->set(std::nullopt, params_.vcpu_dirty_limit); s.is_ok())
    limit_on_.store(true);
}

void OutgoingMigration::Impl::release_dirty_limit() {
  if (!limit_on_.load()) return;
  final_throttle_us_.store(limiter_->throttle_time_per_round_us());
  final_ring_full_us_.store(limiter_->ring_full_time_us());
  limit_released_.store(true);
  (void)limiter_->cancel(std::nullopt);
  for (const VcpuDirtyLimit& v : saved_limits_) (void)limiter_->set(v.cpu_index, v.limit_rate);
}

Status OutgoingMigration::Impl::precopy_switchover() {
  board_.set(MigrationStatus::kDevice);
  auto t0 = Clock::now();
  guest_.pause();
  paused_by_us_ = true;
  (void)sync_dirty();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++dirty_sync_count_;
  }
  if (Status s = run_round(round_ + 1); !s.is_ok()) return s;
  if (Status s = link_->send(ControlType::kDeviceState, 0, guest_.save_state()); !s.is_ok())
    return s;
  if (Status s = wait_for(ControlType::kCompleteAck, 0, std::chrono::seconds(120)); !s.is_ok())
    return s;
  std::lock_guard<std::mutex> lock(mu_);
  downtime_ms_ = ms_since(t0);
  return Status::ok();
}

Status OutgoingMigration::Impl::postcopy_switch() {
  auto t0 = Clock::now();
  guest_.pause();
  paused_by_us_ = true;
  // S5 at the switch: the last hints are taken with the guest paused (its free set is exact),
  // then reporting stops: from here the guest runs on the destination, and the source's pages
  // are fetched by faults or sent by the final round. A page skipped here because free is not
  // discarded either: the destination holds an older copy of a free page or nothing, and its
  // guest, which sees the page as free, writes it before it reads it. Reads of a page never
  // sent fault and are answered from the source (a request for a page not dirty is served
  // whole, like a stale request), so no stale content of a page the guest uses is exposed:
  // a reuse on the source before the switch is in the dirty log applied here (after the
  // hints), so it is sent or, if sent before, discarded and faulted in afresh.
  (void)sync_dirty();
  if (filter_) {
    filter_->stop();
    // The destination completes postcopy once every page is in place: the pages skipped as
    // free and never sent (not dirty, not sent: only a hint takes a page out of the bitmap
    // unsent) go in the final round as zero ranges, never read.
    for (uint32_t b = 0; b < state_->blocks.size(); ++b) {
      AtomicBitmap& dirty = state_->dirty.block(b);
      const AtomicBitmap& sent = state_->sent.block(b);
      for (uint64_t hp = 0; hp < dirty.size(); ++hp) {
        if (dirty.test(hp) || sent.test(hp)) continue;
        state_->free_zero.block(b).set(hp);
        dirty.set(hp);
      }
    }
  }
  // Stale pages: dirty now but sent before. The destination discards them so they fault.
  std::vector<Range> discard;
  uint64_t discarded = 0;
  for (uint32_t b = 0; b < state_->blocks.size(); ++b) {
    const AtomicBitmap& dirty = state_->dirty.block(b);
    const AtomicBitmap& sent = state_->sent.block(b);
    const uint64_t hp_size = state_->blocks[b]->host_page_size();
    for (size_t p = dirty.find_next_set(0); p < dirty.size(); p = dirty.find_next_set(p + 1)) {
      if (!sent.test(p)) continue;
      ++discarded;
      if (!discard.empty() && discard.back().block == b &&
          discard.back().offset + discard.back().length == p * hp_size)
        discard.back().length += hp_size;
      else
        discard.push_back({b, p * hp_size, hp_size});
    }
  }
  std::vector<uint8_t> ranges = encode_ranges(discard);
  std::vector<uint8_t> device = guest_.save_state();
  // The recovery token first: a source that resumes this migration on a new link presents it.
  recovery_token_ = engine::random_u64();
  std::vector<uint8_t> payload = engine::encode_token(recovery_token_);
  uint64_t n = ranges.size();
  payload.resize(16);
  std::memcpy(payload.data() + 8, &n, 8);
  payload.insert(payload.end(), ranges.begin(), ranges.end());
  payload.insert(payload.end(), device.begin(), device.end());
  state_->preempt.store(caps_.postcopy_preempt);
  state_->postcopy.store(true, std::memory_order_release);
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++dirty_sync_count_;
    counters_discarded_ = discarded;
  }
  // postcopy-active before the destination can say so: an orchestrator that sees the
  // destination in postcopy may pause the source at once (a pause only raises a flag that
  // postcopy_run reads after the send).
  board_.set(MigrationStatus::kPostcopyActive);
  if (Status s = link_->send(ControlType::kPostcopyStart, 0, payload); !s.is_ok()) return s;
  postcopy_started_ = true;
  postcopy_start_time_ = t0;
  link_->enable_keepalive(engine::kKeepaliveInterval, params_.postcopy_peer_timeout);
  return postcopy_run();
}

Status OutgoingMigration::Impl::postcopy_run() {
  bool acked = false;
  while (true) {
    Status s = postcopy_finish(&acked);
    if (s.is_ok()) return s;
    stop_workers();
    // Only a broken link pauses: a protocol error or the destination's kError ends it.
    if (shutdown_requested_.load() || !engine::breaks_link(s)) return s;
    // A destination that gives up (shutdown, cancel) says why before its channels close.
    if (Status verdict = peer_verdict(); !verdict.is_ok()) return verdict;
    if (!link_broken()) return s;
    if (Status r = pause_until_resumed(s); !r.is_ok()) return r;
    acked = true;  // a destination that resynced is in postcopy: its ack is no longer due
  }
}

Status OutgoingMigration::Impl::postcopy_finish(bool* acked) {
  if (!*acked) {
    if (Status s = wait_for(ControlType::kPostcopyAck, 0, std::chrono::seconds(120)); !s.is_ok())
      return s;
    *acked = true;
    std::lock_guard<std::mutex> lock(mu_);
    downtime_ms_ = ms_since(postcopy_start_time_);
  }
  if (Status s = run_round(round_ + 1); !s.is_ok()) return s;
  if (Status s = link_->send(ControlType::kComplete); !s.is_ok()) return s;
  return wait_for(ControlType::kCompleteAck, 0, std::chrono::seconds(300));
}

MigrationInfo OutgoingMigration::Impl::info() const {
  MigrationInfo i;
  i.status = board_.get();
  i.error = board_.error();
  std::lock_guard<std::mutex> lock(mu_);
  i.transport = transport_name_;
  i.authenticated = params_.peer_key != nullptr;
  i.encryption = encryption_;
  // Session keys come from the key, or from x509 in frames (rdma, dpdk: toolkit/channel_tls.h).
  i.page_integrity = params_.page_integrity && (i.authenticated || !i.encryption.empty());
  MigrationStats& s = i.stats;
  s.transferred = counters_.bytes.load();
  s.total = total_bytes_;
  s.remaining = state_ ? state_->dirty.dirty_bytes() : total_bytes_;
  if (i.status == MigrationStatus::kCompleted) s.remaining = 0;
  s.duplicate = counters_.zero_pages.load();
  s.normal = counters_.normal_pages.load();
  s.normal_bytes = s.normal * kTargetPageSize;
  s.dirty_pages_rate = dirty_pages_rate_;
  s.mbps = mbps_;
  s.dirty_sync_count = dirty_sync_count_;
  s.postcopy_requests = counters_.requests.load();
  s.precopy_bytes = counters_.precopy_bytes.load();
  s.postcopy_bytes = counters_.postcopy_bytes.load();
  s.downtime = downtime_ms_;
  s.total_time = is_terminal(i.status) ? total_time_ms_ : ms_since(start_time_);
  s.setup_time = setup_time_ms_;
  s.expected_downtime = expected_downtime_ms_;
  s.urgent_pages = counters_.urgent_pages.load();
  s.preemptions = counters_.preemptions.load();
  s.raised_requests = counters_.raised.load();
  s.discarded_pages = counters_discarded_;
  s.dirty_limit_active = limit_on_.load();
  if (limit_released_.load()) {
    s.dirty_limit_throttle_time_per_round = final_throttle_us_.load();
    s.dirty_limit_ring_full_time = final_ring_full_us_.load();
  } else if (s.dirty_limit_active) {
    s.dirty_limit_throttle_time_per_round = limiter_->throttle_time_per_round_us();
    s.dirty_limit_ring_full_time = limiter_->ring_full_time_us();
  }
  s.switchover_forced = forced_.load();
  s.postcopy_pauses = pauses_.load();
  s.postcopy_recoveries = recoveries_.load();
  s.recovery_missing_pages = missing_at_resume_.load();
  if (filter_) {
    const engine::FreePageFilter::Counters c = filter_->counters();
    s.free_page_hints = c.hints;
    s.free_pages_skipped = c.skipped;
    s.free_page_hints_refused = c.refused;
  }
  return i;
}

OutgoingMigration::OutgoingMigration(Guest& guest, MigrationCapabilities caps,
                                     MigrationParameters params, DirtyLimiter* limiter)
    : impl_(std::make_unique<Impl>(guest, caps, params, limiter)) {}
OutgoingMigration::~OutgoingMigration() = default;
Status OutgoingMigration::start(const std::string& uri) { return impl_->start(uri); }
Status OutgoingMigration::start_postcopy() { return impl_->start_postcopy(); }
void OutgoingMigration::cancel() { impl_->cancel(); }
void OutgoingMigration::shutdown() { impl_->shutdown(); }
Status OutgoingMigration::pause() { return impl_->pause(); }
Status OutgoingMigration::resume(const std::string& uri) { return impl_->resume(uri); }
MigrationInfo OutgoingMigration::info() const { return impl_->info(); }
MigrationStatus OutgoingMigration::wait(std::chrono::milliseconds timeout) {
  return impl_->board_.wait(timeout);
}
void OutgoingMigration::on_status(StatusCallback cb) { impl_->board_.on_status(std::move(cb)); }

}  // namespace tern
