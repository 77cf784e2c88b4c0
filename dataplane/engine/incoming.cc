// IncomingMigration: the destination's control thread. It accepts the channels, creates the
// guest from the announced layout, acknowledges rounds, switches to postcopy (userfaultfd,
// discard of stale pages, staged placement) and completes: loads the device state, starts
// the guest and acknowledges. A postcopy link that breaks pauses the migration until a source
// resumes it on a recovery listener (incoming_recovery.cc).
#include "dataplane/engine/incoming_impl.h"

#include <algorithm>
#include <cstring>
#include <thread>
#include <utility>

namespace tern {

using engine::ControlLink;
using engine::ControlMessage;
using engine::FaultPoller;
using engine::ReceiverPoller;
using engine::RecvState;
using engine::ms_since;
using engine::seconds_since;
using engine::worker_count;
using Clock = std::chrono::steady_clock;

Result<std::string> IncomingMigration::Impl::start(const std::string& uri) {
  if (board_.get() != MigrationStatus::kNone)
    return Status(Code::kInvalidArgument, "this destination already accepted a migration");
  auto opened = engine::open_transport(uri, params_);
  if (!opened) return opened.status();
  transport_ = std::move(opened->transport);
  transport_name_ = opened->name;
  auto bound = transport_->listen(opened->address);
  if (!bound) return bound.status();
  listen_uri_ = *bound;
  thread_ = std::thread([this] { run(); });
  return *bound;
}

void IncomingMigration::Impl::run() {
  while (true) {
    Status s = migrate();
    {
      std::lock_guard<std::mutex> lock(mu_);
      total_time_ms_ = ms_since(start_time_);
    }
    stop_workers();
    if (s.is_ok()) {
      board_.set(MigrationStatus::kCompleted);  // complete_precopy() released guest RAM already
      return;
    }
    end_session(s);
    // The listener is armed again unless the user cancelled here, it broke, or the guest ran
    // here (postcopy): then its memory is split between the hosts and this one is lost.
    if (!accepted_ || postcopy_ || cancel_requested_.load()) return;
    reset_session();
    notice(Status(Code::kOk, "the migration " + std::string(status_name(board_.get())) +
                                     " before the guest ran here: waiting again for a source on " +
                                     listen_uri_));
  }
}

void IncomingMigration::Impl::end_session(const Status& s) {
  if (transport_) transport_->release_memory();  // the source's keys stop working after a failure
  const bool from_source = s.code() == Code::kCancelled && !cancel_requested_.load();
  std::string msg = s.to_string();
  if (postcopy_ && state_) {
    const uint64_t total = state_->total_host_pages();
    const uint64_t missing = total - std::min(total, state_->received.dirty_host_pages());
    msg = "postcopy failed: " + msg + "; the guest cannot continue without the source's pages (" +
          std::to_string(missing) + " of " + std::to_string(total) +
          " host pages never arrived): it is stopped here and lost";
  }
  // After a frame that failed authentication the sealed kError still reaches the real source.
  if (link_ && (link_->error().is_ok() || link_->error().code() == Code::kDenied) &&
      !from_source) {
    if (s.code() == Code::kCancelled)
      (void)link_->send_text(ControlType::kCancel, "cancelled on the destination",
                             std::chrono::milliseconds(500));
    else
      (void)link_->send_text(ControlType::kError, msg, std::chrono::milliseconds(500));
  }
  // A failed incoming guest never runs: stop it if postcopy had started it. No lock is held
  // here: QMP reads status and statistics meanwhile.
  std::shared_ptr<Guest> g = guest();
  if (g && g->running()) stop_lost_guest(*g);
  if (uffd_ && state_)
    for (RamBlock* b : state_->blocks) (void)uffd_->unregister_range(b->base(), b->size());
  if (s.code() == Code::kCancelled && !postcopy_)
    board_.set(MigrationStatus::kCancelled);
  else
    board_.set(MigrationStatus::kFailed, msg);
}

void IncomingMigration::Impl::stop_lost_guest(Guest& g) {
  // vCPUs that wait on no page stop at once. One that waits on a page that will never come
  // sits in the kernel (handle_userfault) until guest RAM leaves userfaultfd: its access then
  // completes on an empty page and it stops at its next pause point. The guest is lost anyway.
  std::atomic<bool> paused{false};
  std::thread pauser([&] {
    g.pause();
    paused.store(true);
  });
  for (int i = 0; i < 100 && !paused.load(); ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  if (!paused.load() && uffd_ && state_)
    for (RamBlock* b : state_->blocks) (void)uffd_->unregister_range(b->base(), b->size());
  pauser.join();
}

void IncomingMigration::Impl::reset_session() {
  workers_.clear();
  faults_.reset();
  receivers_.clear();
  link_.reset();
  channels_.clear();  // the source sees its channels close
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_.reset();
    rounds_acked_ = 0;
    setup_time_ms_ = total_time_ms_ = downtime_ms_ = 0;
  }
  // The failed guest stays (guest() keeps answering, as after any failure) until the next
  // source's layout replaces it.
  uffd_.reset();
  accepted_ = postcopy_ = precopy_only_ = false;
  zero_copy_blocks_ = 0;
}

Status IncomingMigration::Impl::accept() {
  while (true) {
    if (cancel_requested_.load()) return Status(Code::kCancelled, "cancelled while waiting");
    auto chans = transport_->accept(std::chrono::milliseconds(200));
    for (const Status& r : transport_->take_rejected()) notice(r);
    if (chans) {
      channels_ = std::move(*chans);
      break;
    }
    if (chans.status().code() != Code::kTimeout) return chans.status();
  }
  accepted_ = true;
  channel_count_ = channels_.size();
  {
    std::lock_guard<std::mutex> lock(mu_);
    start_time_ = Clock::now();
    encryption_ = transport_->encryption();
  }
  if (is_terminal(board_.get()))
    board_.restart(MigrationStatus::kSetup);  // a re-armed destination's next migration
  else
    board_.set(MigrationStatus::kSetup);
  if (channels_.size() < kFirstBulkChannel + 1)
    return Status(Code::kProtocol, "source opened only " + std::to_string(channels_.size()) +
                                       " channels");
  link_ = std::make_unique<ControlLink>(channels_[kControlChannel].get(),
                                       engine::LinkSide::kDestination);
  return Status::ok();
}

Status IncomingMigration::Impl::setup(const ControlMessage& m) {
  auto layout = decode_layout(m.payload.data(), m.payload.size());
  if (!layout) return layout.status();
  auto guest = factory_(*layout);
  if (!guest) return guest.status();
  std::shared_ptr<Guest> previous;  // a failed migration's guest, destroyed outside the lock
  {
    std::lock_guard<std::mutex> lock(mu_);
    previous = std::exchange(guest_, std::move(*guest));
  }
  previous.reset();
  const Layout mine = guest_->layout();
  if (mine.blocks.size() != layout->blocks.size())
    return Status(Code::kInternal, "destination guest does not match the announced layout");
  for (size_t i = 0; i < mine.blocks.size(); ++i)
    if (mine.blocks[i].size != layout->blocks[i].size ||
        mine.blocks[i].host_page_size != layout->blocks[i].host_page_size)
      return Status(Code::kInternal, "destination block '" + mine.blocks[i].name +
                                         "' does not match the announced layout");
  // Guest RAM is announced to the transport (which may then register it for remote writes,
  // pinning what it registers) only when the source said no postcopy will follow: postcopy
  // needs pages missing, and a pinned page cannot be.
  precopy_only_ = (m.round & kLayoutPrecopyOnly) != 0;
  const bool integrity = (m.round & kLayoutPageIntegrity) != 0;
  if (integrity != params_.page_integrity)
    return Status(Code::kInvalidArgument,
                  std::string("page integrity (__io.github.tern_page-integrity) is ") +
                      (integrity ? "on" : "off") + " on the source and " +
                      (params_.page_integrity ? "on" : "off") +
                      " on this destination: set it the same on both sides");
  if (integrity && channels_[kUrgentChannel]->keys() == nullptr)
    return Status(Code::kInvalidArgument,
                  "page integrity (__io.github.tern_page-integrity) needs session keys: the "
                  "channels must be authenticated with a pre-shared key (ternd --auth-key-file), or on rdma and dpdk with x509 (--tls-creds)");
  // A source that may switch to postcopy needs a guest here that can take it (a VMM that
  // handed over its userfaultfd): found now, before a page moves, not at the switch, when the
  // source's guest is already paused.
  if (!precopy_only_)
    if (auto uffd = guest_->postcopy_userfault(); !uffd)
      return Status(uffd.status().code(),
                    "the source has postcopy-ram on, but this destination cannot take "
                    "postcopy: " + uffd.status().message() +
                    "; turn postcopy-ram off on the source or attach a VMM that offers it");
  if (precopy_only_)
    for (RamBlock* b : guest_->ram())
      if (Status s = transport_->register_memory(b->base(), b->size()); !s.is_ok()) return s;
  // Guest RAM is not faulted in here: setup must not grow with RAM size. 4 KiB blocks sit on
  // transparent huge pages, so landing a page costs a fault per 2 MiB, and pages the source
  // reports as never populated are never touched.
  {
    std::lock_guard<std::mutex> lock(mu_);
    state_ = std::make_unique<RecvState>(guest_->ram(), *layout);
    if (integrity) state_->enable_page_integrity();
  }
  for (size_t c = kUrgentChannel; c < channels_.size(); ++c)
    receivers_.push_back(std::make_unique<ReceiverPoller>(*state_, channels_[c].get()));
  faults_ = std::make_unique<FaultPoller>(*state_, channels_[kUrgentChannel].get());
  start_workers();
  {
    std::lock_guard<std::mutex> lock(mu_);
    setup_time_ms_ = ms_since(start_time_);
  }
  if (Status s = link_->send(ControlType::kLayoutAck,
                             kLayoutAckPageRuns | (integrity ? kLayoutAckPageIntegrity : 0));
      !s.is_ok())
    return s;
  board_.set(MigrationStatus::kActive);
  return Status::ok();
}

void IncomingMigration::Impl::start_workers() {
  const uint32_t bulk = static_cast<uint32_t>(channels_.size()) - kFirstBulkChannel;
  const uint32_t n = std::min(worker_count(params_), bulk);
  // The source pins its workers from the first core up; the destination takes cores from the
  // last one down, so that on one host the two sides' workers do not share a core (two
  // pinned pollers on one core cost a scheduler slice, ~4-8 ms, per hand-off).
  const int cores = static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  std::vector<int> cpus =
      engine::worker_cpus(params_, std::max(cores, static_cast<int>(n)), *transport_);
  std::reverse(cpus.begin(), cpus.end());
  cpus.resize(n);
  // The fault poller and the urgent channel's receiver get a thread of their own, unpinned,
  // that sleeps until a fault or an answer comes and then preempts whatever runs (real-time):
  // a request waits neither for bulk placements nor for a busy core's time slice. A channel
  // that cannot wake a sleeper when an answer arrives (dpdk: a poll timer) keeps them on
  // worker 0, which spins while requests are outstanding.
  const bool own_urgent = channels_[kUrgentChannel]->wakes_on_receive();
  // In precopy the bulk workers block soon when idle; in postcopy an answer to a fault may come
  // on a bulk channel (a page that channel was sending, S3), and a sleeping worker wakes late
  // (BM_PostcopyFaults loopback_nopreempt: p99 from 256 us to 1-8 ms with bulk_backoff).
  const BackoffPolicy bulk_policy = own_urgent && !postcopy_ ? bulk_backoff() : BackoffPolicy{};
  workers_.clear();
  for (uint32_t w = 0; w < n; ++w)
    workers_.push_back(std::make_unique<Worker>("tern-recv" + std::to_string(w), cpus[w], bulk_policy));
  for (uint32_t k = 0; k < bulk; ++k) {
    receivers_[1 + k]->set_shares_worker_with_faults(!own_urgent && k % n == 0);
    workers_[k % n]->add(receivers_[1 + k].get());
  }
  Worker* urgent = workers_[0].get();
  if (own_urgent) {
    workers_.push_back(std::make_unique<Worker>("tern-urgent", -1, urgent_backoff()));
    urgent = workers_.back().get();
  }
  urgent->add(faults_.get());
  urgent->add(receivers_[0].get());
  for (auto& w : workers_) w->start();
}

void IncomingMigration::Impl::stop_workers() {
  for (auto& w : workers_) w->stop();
}

Status IncomingMigration::Impl::check_health() {
  if (shutdown_requested_.load())
    return Status(Code::kUnavailable, "the destination ternd is shutting down");
  if (cancel_requested_.load() && !postcopy_)  // postcopy cannot be cancelled: the guest runs here
    return Status(Code::kCancelled, "cancelled on the destination");
  if (postcopy_ && pause_requested_.load()) return Status(Code::kIo, "migrate-pause on the destination");
  for (auto& r : receivers_)
    if (r->failed()) return r->error();
  if (faults_ && faults_->failed()) return faults_->error();
  return link_->keepalive();
}

// Acknowledges every round whose end every bulk channel has delivered.
Status IncomingMigration::Impl::ack_rounds() {
  uint32_t done = UINT32_MAX;
  for (size_t i = 1; i < receivers_.size(); ++i) done = std::min(done, receivers_[i]->last_round_end());
  while (rounds_acked_ < done) {
    ++rounds_acked_;
    if (Status s = link_->send(ControlType::kRoundAck, rounds_acked_); !s.is_ok()) return s;
  }
  return Status::ok();
}

Status IncomingMigration::Impl::migrate() {
  if (Status s = accept(); !s.is_ok()) return s;
  bool have_layout = false;
  while (true) {
    Status s = check_health();
    if (s.is_ok() && have_layout) s = ack_rounds();
    std::optional<engine::ControlMessage> m;
    if (s.is_ok()) m = link_->poll();
    if (s.is_ok() && !m) s = link_->error();
    if (!s.is_ok()) {
      // In postcopy a broken link pauses the migration until a source resumes it.
      if (Status r = survive(s); !r.is_ok()) return r;
      continue;
    }
    if (!m) {
      link_->wait(std::chrono::milliseconds(1));
      continue;
    }
    switch (m->type) {
      case ControlType::kLayout:
        if (have_layout) return Status(Code::kProtocol, "second layout message");
        if (Status s = setup(*m); !s.is_ok()) return s;
        have_layout = true;
        break;
      case ControlType::kPostcopyStart:
        if (!have_layout || postcopy_) return Status(Code::kProtocol, "unexpected postcopy start");
        if (precopy_only_)
          return Status(Code::kProtocol, "postcopy start, but the source announced a "
                                         "precopy-only migration (guest RAM may be registered "
                                         "for remote writes)");
        if (Status s = enter_postcopy(*m); !s.is_ok()) return s;
        break;
      case ControlType::kDeviceState:
        if (!have_layout || postcopy_) return Status(Code::kProtocol, "unexpected device state");
        return complete_precopy(*m);
      case ControlType::kComplete: {
        if (!postcopy_) return Status(Code::kProtocol, "complete before postcopy");
        Status done = complete_postcopy();
        if (done.is_ok()) return done;
        if (Status r = survive(done); !r.is_ok()) return r;
        break;  // resumed: the source sends the rest and kComplete again
      }
      case ControlType::kError:
        return Status(Code::kProtocol, "source failed: " + m->text());
      case ControlType::kCancel:
        return Status(Code::kCancelled, "source cancelled the migration");
      default:
        return Status(Code::kProtocol, "unexpected control message " +
                                           std::to_string(static_cast<uint32_t>(m->type)));
    }
  }
}

// A source that fails or cancels says why on the control channel, then closes its channels:
// another channel's close may be seen first, so the control channel is read until it closes
// too (at most 500 ms) and a reason found there takes precedence.
Status IncomingMigration::Impl::peer_reason(const Status& s) {
  if (!link_ || s.code() == Code::kCancelled || shutdown_requested_.load()) return s;
  const auto deadline = Clock::now() + std::chrono::milliseconds(500);
  while (Clock::now() < deadline) {
    while (auto m = link_->poll()) {
      if (m->type == ControlType::kError)
        return Status(Code::kProtocol, "source failed: " + m->text());
      if (m->type == ControlType::kCancel)
        return Status(Code::kCancelled, "source cancelled the migration");
    }
    if (!link_->error().is_ok()) break;
    link_->wait(std::chrono::milliseconds(5));
  }
  return s;
}

Status IncomingMigration::Impl::enter_postcopy(const ControlMessage& m) {
  auto t0 = Clock::now();
  if (m.payload.size() < 16) return Status(Code::kProtocol, "postcopy start without payload");
  std::memcpy(&recovery_token_, m.payload.data(), 8);
  uint64_t n;
  std::memcpy(&n, m.payload.data() + 8, 8);
  if (n > m.payload.size() - 16)
    return Status(Code::kProtocol, "postcopy start: bad discard size");
  auto discard = decode_ranges(m.payload.data() + 16, n, state_->layout);
  if (!discard) return discard.status();
  std::vector<uint8_t> device(m.payload.begin() + 16 + static_cast<long>(n), m.payload.end());

  auto uffd = guest_->postcopy_userfault();  // the VMM's, for a guest in another process
  if (uffd && !*uffd) uffd = Userfault::open();
  if (!uffd) return uffd.status();
  uffd_ = std::move(*uffd);
  stop_workers();  // receivers change landing and placement while no worker runs them
  // From here pages land as 4 KiB placements: no new transparent huge pages (before the
  // registration, so no fault in between gets a huge page either).
  for (RamBlock* b : state_->blocks)
    if (Status s = b->use_small_pages(); !s.is_ok()) return s;
  choose_placement();
  for (uint32_t i = 0; i < state_->blocks.size(); ++i) {
    RamBlock* b = state_->blocks[i];
    if (Status s = uffd_->register_range(b->base(), b->size(), b->host_page_size(),
                                         /*minor=*/state_->page_cache[i] != nullptr);
        !s.is_ok())
      return s;
  }
  // Stale pages are no longer received; then every host page that is not received (stale, or
  // never sent) is dropped, so that the guest's touch faults.
  for (const Range& r : *discard) {
    RamBlock* b = state_->blocks[r.block];
    for (uint64_t off = r.offset; off < r.offset + r.length; off += b->host_page_size())
      state_->received.block(r.block).clear(off / b->host_page_size());
  }
  // Page integrity: a page whose latest copy did not verify is dropped like a stale one and
  // fetched again, checked, when the guest touches it (page_integrity.h).
  if (state_->unverified)
    for (uint32_t i = 0; i < state_->blocks.size(); ++i) {
      const AtomicBitmap& bad = state_->unverified->block(i);
      for (size_t p = bad.find_next_set(0); p < bad.size(); p = bad.find_next_set(p + 1))
        state_->received.block(i).clear(p);
    }
  for (uint32_t i = 0; i < state_->blocks.size(); ++i) {
    RamBlock* b = state_->blocks[i];
    const AtomicBitmap& got = state_->received.block(i);
    for (uint64_t p = 0; p < got.size();) {
      if (got.test(p)) {
        ++p;
        continue;
      }
      uint64_t end = p + 1;
      while (end < got.size() && !got.test(end)) ++end;
      if (Status s = b->discard(p * b->host_page_size(), (end - p) * b->host_page_size());
          !s.is_ok())
        return s;
      p = end;
    }
  }
  if (zero_copy_blocks_ > 0) state_->take_received();
  state_->uffd = uffd_.get();
  for (auto& r : receivers_) r->enter_postcopy();
  faults_->enable();
  postcopy_ = true;
  if (Status s = guest_->load_state(device); !s.is_ok()) return s;
  start_workers();
  if (Status s = guest_->start(); !s.is_ok()) return s;
  {
    std::lock_guard<std::mutex> lock(mu_);
    downtime_ms_ = ms_since(t0);
  }
  link_->enable_keepalive(engine::kKeepaliveInterval, params_.postcopy_peer_timeout);
  board_.set(MigrationStatus::kPostcopyActive);
  // A failed ack is a broken link like any other: the migration pauses (the guest runs here).
  if (Status s = link_->send(ControlType::kPostcopyAck); !s.is_ok()) return survive(s);
  return Status::ok();
}

void IncomingMigration::Impl::choose_placement() {
  state_->page_cache.clear();
  state_->page_cache.resize(state_->blocks.size());
  zero_copy_blocks_ = 0;
  for (uint32_t i = 0; i < state_->blocks.size(); ++i) {
    RamBlock* b = state_->blocks[i];
    if (b->fd() < 0) continue;  // anonymous memory: UFFDIO_COPY, as ever
    if (!b->hugetlb() && !params_.zero_copy_small_pages) continue;  // cheaper (migration.h)
    std::string why = uffd_->minor_faults_missing(b->host_page_size());
    if (why.empty()) {
      auto view = PageCacheView::map(*b);
      if (view) {
        state_->page_cache[i] = std::move(*view);
        ++zero_copy_blocks_;
        continue;
      }
      why = view.status().message();
    }
    notice(Status(Code::kUnavailable, "block '" + b->name() +
                                          "' is file-backed but its postcopy pages are placed "
                                          "with UFFDIO_COPY (a second copy): " + why));
  }
}

Status IncomingMigration::Impl::complete_precopy(const ControlMessage& m) {
  board_.set(MigrationStatus::kDevice);
  stop_workers();
  // Page integrity: every page's latest copy must have verified before the guest runs here
  // (a page that failed and was not sent again was changed on the way; page_integrity.h).
  uint32_t block = 0;
  uint64_t offset = 0;
  if (const uint64_t n = state_->unverified_pages(&block, &offset); n > 0)
    return Status(Code::kDenied,
                  "page integrity: " + std::to_string(n) + " host page(s) failed authentication "
                  "and were not sent again (first: block " + std::to_string(block) +
                  " offset " + std::to_string(offset) + "): changed on the way; the guest "
                  "does not run here");
  if (Status s = guest_->load_state(m.payload); !s.is_ok()) return s;
  // Every page has landed (the last round was acknowledged): the source's keys to guest RAM
  // (rdma direct placement) stop working before the guest runs here.
  transport_->release_memory();
  return finish();
}

Status IncomingMigration::Impl::complete_postcopy() {
  // Every host page must be in place before the guest stops depending on the source.
  const uint64_t total = state_->total_host_pages();
  auto last_progress = Clock::now();
  uint64_t last = 0;
  while (true) {
    uint64_t have = state_->received.dirty_host_pages();
    if (have == total) break;
    if (have != last) {
      last = have;
      last_progress = Clock::now();
    }
    if (Status s = check_health(); !s.is_ok()) return s;
    if (seconds_since(last_progress) > 60)
      return Status(Code::kTimeout, std::to_string(total - have) +
                                        " host pages never arrived after the source completed");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  stop_workers();
  for (RamBlock* b : state_->blocks) (void)uffd_->unregister_range(b->base(), b->size());
  return finish();
}

// Device state is loaded: start the guest here (postcopy started it already) and acknowledge,
// which ends the downtime.
Status IncomingMigration::Impl::finish() {
  if (!guest_->running())
    if (Status s = guest_->start(); !s.is_ok()) return s;
  return link_->send_text(ControlType::kCompleteAck, "running");
}

MigrationInfo IncomingMigration::Impl::info() const {
  MigrationInfo i;
  i.status = board_.get();
  i.error = board_.error();
  i.authenticated = params_.peer_key != nullptr;
  std::lock_guard<std::mutex> lock(mu_);
  i.transport = transport_name_;
  i.encryption = encryption_;
  // Session keys come from the key, or from x509 in frames (rdma, dpdk: toolkit/channel_tls.h).
  i.page_integrity = params_.page_integrity && (i.authenticated || !i.encryption.empty());
  if (state_) {
    const auto& c = state_->counters;
    MigrationStats& s = i.stats;
    s.transferred = c.bytes.load();
    s.total = state_->layout.total_bytes();
    s.duplicate = c.zero_pages.load();
    s.normal = c.normal_pages.load();
    s.normal_bytes = s.normal * kTargetPageSize;
    s.postcopy_requests = c.requests.load();
    s.precopy_bytes = c.precopy_bytes.load();
    s.postcopy_bytes = c.postcopy_bytes.load();
    s.zero_copy_pages = c.installed_pages.load();
    s.dirty_sync_count = rounds_acked_;
    i.fault_latency = state_->fault_latency.snapshot();
  }
  i.stats.setup_time = setup_time_ms_;
  i.stats.postcopy_pauses = pauses_.load();
  i.stats.postcopy_recoveries = recoveries_.load();
  i.stats.downtime = downtime_ms_;
  i.stats.total_time = is_terminal(i.status) ? total_time_ms_
                       : (start_time_ == Clock::time_point{}) ? 0 : ms_since(start_time_);
  return i;
}

IncomingMigration::IncomingMigration(GuestFactory factory, MigrationParameters params)
    : impl_(std::make_unique<Impl>(std::move(factory), params)) {}
IncomingMigration::~IncomingMigration() = default;
Result<std::string> IncomingMigration::start(const std::string& uri) { return impl_->start(uri); }
void IncomingMigration::cancel() { impl_->cancel(); }
void IncomingMigration::shutdown() { impl_->shutdown(); }
void IncomingMigration::on_notice(NoticeCallback cb) { impl_->on_notice(std::move(cb)); }
Status IncomingMigration::pause() { return impl_->pause(); }
Result<std::string> IncomingMigration::recover(const std::string& uri) {
  return impl_->recover(uri);
}
MigrationInfo IncomingMigration::info() const { return impl_->info(); }
MigrationStatus IncomingMigration::wait(std::chrono::milliseconds timeout) {
  return impl_->board_.wait(timeout);
}
void IncomingMigration::on_status(StatusCallback cb) { impl_->board_.on_status(std::move(cb)); }
Guest* IncomingMigration::guest() { return impl_->guest().get(); }
std::shared_ptr<Guest> IncomingMigration::shared_guest() { return impl_->guest(); }

}  // namespace tern
