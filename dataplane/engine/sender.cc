#include "dataplane/engine/sender.h"

#include <algorithm>
#include <cstring>

namespace tern::engine {

namespace {
constexpr int kPrecopyChunkBudget = 8; // chunks per lane per poll when nothing is urgent
constexpr uint32_t kMaxRequests = 32;
}  // namespace

bool is_zero_target_page(const uint8_t* p) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(p);
  if (w[0] | w[1]) return false;  // most data pages end here
  for (size_t i = 0; i < kTargetPageSize / 8; i += 8) {
    uint64_t acc = w[i] | w[i + 1] | w[i + 2] | w[i + 3] | w[i + 4] | w[i + 5] | w[i + 6] | w[i + 7];
    if (acc) return false;
  }
  return true;
}

SendState::SendState(std::vector<RamBlock*> blocks_in, uint32_t bulk)
    : blocks(std::move(blocks_in)),
      dirty(host_page_sizes(blocks), block_sizes(blocks)),
      sent(host_page_sizes(blocks), block_sizes(blocks)),
      free_zero(host_page_sizes(blocks), block_sizes(blocks)),
      slots(new BulkSlot[bulk]),
      bulk_channels(bulk) {
  uint32_t largest = kSmallPage;
  for (auto* b : blocks) {
    block_start.push_back(total_host_pages);
    total_host_pages += b->host_pages();
    largest = std::max(largest, b->host_page_size());
  }
  stripe_pages = std::max<uint64_t>(1, kStripeBytes / largest);
}

void SendState::locate(uint64_t global, uint32_t* block, uint64_t* hp) const {
  auto it = std::upper_bound(block_start.begin(), block_start.end(), global);
  uint32_t b = static_cast<uint32_t>(it - block_start.begin() - 1);
  *block = b;
  *hp = global - block_start[b];
}

SenderPoller::SenderPoller(SendState& state, SendCounters& counters, const Layout& layout,
                           Channel* urgent, std::vector<BulkChannel> bulk, double bandwidth_share)
    : state_(state),
      counters_(counters),
      layout_(layout),
      owns_urgent_(urgent != nullptr),
      bulk_(bulk.size()),
      bandwidth_share_(bandwidth_share) {
  if (urgent) {
    urgent_.channel = urgent;
    urgent_.index = urgent->index();
    urgent_.urgent = true;
    if (const ChannelKeys* keys = urgent->keys()) {
      urgent_.sealer = std::make_unique<MarkerSealer>(keys->send);
      request_opener_ = std::make_unique<MarkerOpener>(keys->recv);
      request_tamper_.arm(take_marker_tamper(MarkerKind::kRequest));
    }
  }
  for (size_t i = 0; i < bulk.size(); ++i) {
    bulk_[i].channel = bulk[i].channel;
    bulk_[i].slot = &state_.slots[bulk[i].slot];
    bulk_[i].index = bulk[i].channel->index();
    if (const ChannelKeys* keys = bulk[i].channel->keys())
      bulk_[i].sealer = std::make_unique<MarkerSealer>(keys->send);
  }
  bucket_time_ = std::chrono::steady_clock::now();
}

int SenderPoller::wait_fd() const {
  // None once failed: a broken channel stays readable (EOF) with nothing to receive.
  return owns_urgent_ && !failed() ? urgent_.channel->wait_fd() : -1;
}

uint32_t SenderPoller::wait_poll_us() const {
  for (const Lane& l : bulk_)
    if (polls_window(l)) return kWindowPollUs;
  return 0;
}

void SenderPoller::wait_fds(std::vector<pollfd>& out) const {
  Poller::wait_fds(out);
  for (const Lane& l : bulk_)
    if (sleeps_on_window(l)) out.push_back({l.channel->tx_wait_fd(), POLLOUT, 0});
}

void SenderPoller::fail(Status s) {
  if (failed_.load(std::memory_order_relaxed)) return;
  error_ = std::move(s);
  failed_.store(true, std::memory_order_release);
}

bool SenderPoller::urgent_work_pending() const {
  return owns_urgent_ && (queue_head_ != queue_tail_ || urgent_.key != 0 ||
                          urgent_.backlog_head != urgent_.backlog_tail);
}

bool SenderPoller::bulk_mid_page() const {
  for (const Lane& l : bulk_)
    if (l.key != 0 && l.next != 0) return true;
  return false;
}

bool SenderPoller::bulk_mid_huge_page() const {
  for (uint32_t k = 0; k < state_.bulk_channels; ++k) {
    const uint64_t key = state_.slots[k].in_progress.load(std::memory_order_acquire);
    if (key != 0 && state_.blocks[key_block(key)]->host_page_size() > kTargetPageSize) return true;
  }
  return false;
}

PollResult SenderPoller::poll() {
  if (failed() || state_.stop.load(std::memory_order_relaxed)) return PollResult::kIdle;
  bool busy = false;
  if (owns_urgent_) busy |= poll_requests();

  // S1: urgent requests go first; with preemption they may cut into a bulk huge page, without
  // it they wait for the bulk channels to reach a host-page boundary.
  const bool preempt = state_.preempt.load(std::memory_order_relaxed);
  if (urgent_work_pending() && (preempt || !bulk_mid_page())) {
    if (bulk_mid_page()) counters_.preemptions.fetch_add(1, std::memory_order_relaxed);
    busy |= serve_urgent();
  }

  const bool postcopy = state_.postcopy.load(std::memory_order_relaxed);
  const int budget = (owns_urgent_ && postcopy) ? 1 : kPrecopyChunkBudget;
  for (Lane& lane : bulk_) {
    if (preempt && urgent_work_pending()) break;  // urgent work still queued: come back
    busy |= step_bulk(lane, budget);
  }

  // One post() and one doorbell per channel per loop iteration.
  auto flush = [&](Lane& l) {
    if (!l.channel) return;
    drain(l);
    if (l.dirty_tx || l.channel->tx_pending()) {
      if (!l.channel->flush()) fail(l.channel->error());
      l.dirty_tx = false;
    }
    l.channel->poll_tx();
  };
  if (owns_urgent_) flush(urgent_);
  bool window_wait = false;
  for (Lane& l : bulk_) {
    flush(l);
    window_wait |= sleeps_on_window(l) || polls_window(l);
  }
  if (busy) return PollResult::kBusy;
  return window_wait ? PollResult::kWaiting : PollResult::kIdle;
}

bool SenderPoller::poll_requests() {
  RxFrame frames[kMaxRequests];
  size_t n = urgent_.channel->poll_rx(frames, kMaxRequests);
  if (n == 0) {
    if (!urgent_.channel->error().is_ok()) fail(urgent_.channel->error());
    return false;
  }
  for (size_t i = 0; i < n && !failed(); ++i) {
    if (!request_opener_) {
      take_request(frames[i].hdr);
      continue;
    }
    FrameHeader inner;
    if (!open_request(frames[i].hdr, frames[i].data, &inner) || !take_request(inner)) break;
    if (uint8_t* again = request_tamper_.take_replay())  // test-only: delivered twice
      if (!open_request(frames[i].hdr, again, &inner) || !take_request(inner)) break;
  }
  return true;
}

bool SenderPoller::open_request(const FrameHeader& outer, uint8_t* payload, FrameHeader* inner) {
  if (is_sealed_frame(outer) && payload != nullptr && outer.length == kSealedMarkerBytes)
    request_tamper_.before_open(payload);
  const uint64_t seq = request_opener_->opened();
  const auto why = request_opener_->open(outer, payload, nullptr, 0, inner);
  if (why == MarkerOpener::Refusal::kNone) return true;
  fail(Status(Code::kDenied, MarkerOpener::describe("page request", why, seq, urgent_.index)));
  return false;
}

bool SenderPoller::take_request(const FrameHeader& h) {
  if (static_cast<FrameType>(h.type) != FrameType::kRequest) {
    fail(Status(Code::kProtocol, "unexpected frame type " + std::to_string(h.type) +
                                     " on the urgent channel"));
    return false;
  }
  if (!state_.postcopy.load(std::memory_order_acquire)) {
    fail(Status(Code::kProtocol, "page request received before postcopy started"));
    return false;
  }
  if (Status s = check_page_frame(h, layout_); !s.is_ok()) {
    fail(Status(Code::kProtocol, "page request: " + s.message()));
    return false;
  }
  counters_.requests.fetch_add(1, std::memory_order_relaxed);
  const uint32_t block = h.block;
  const uint64_t hp = h.offset / state_.blocks[block]->host_page_size();
  const uint64_t key = page_key(block, hp);
  Request req{0, -1};
  if (state_.dirty.claim(block, hp)) {
    state_.sent.block(block).set(hp);
    req.key = key;
  } else {
    // S3: partly sent on a bulk channel? Raise it there; never drop, never postpone.
    for (uint32_t k = 0; k < state_.bulk_channels; ++k) {
      if (state_.slots[k].in_progress.load(std::memory_order_acquire) == key) {
        state_.slots[k].raised.store(true, std::memory_order_release);
        counters_.raised.fetch_add(1, std::memory_order_relaxed);
        req.key = key;
        for (size_t j = 0; j < bulk_.size(); ++j)
          if (bulk_[j].slot == &state_.slots[k]) req.raise_lane = static_cast<int32_t>(j);
        break;
      }
    }
    if (req.raise_lane < 0) {
      if (req.key != 0) return true;  // raised on another worker's lane: it lands from there
      // Sent whole already, but it may still be queued behind a channel's worth of bulk
      // frames (milliseconds): answer it again, whole, on the urgent channel. The source is
      // stopped in postcopy, so both copies are the same; the second to arrive finds the
      // page placed (UFFDIO_COPY says EEXIST) and is dropped.
      counters_.stale_requests.fetch_add(1, std::memory_order_relaxed);
      req.key = key;
    }
  }
  if (queue_tail_ - queue_head_ == kQueue) {
    fail(Status(Code::kInternal, "page request queue overflow"));
    return false;
  }
  queue_[queue_tail_++ % kQueue] = req;
  return true;
}

bool SenderPoller::serve_urgent() {
  bool busy = false;
  while (true) {
    if (!room_for_chunk(urgent_)) return true;  // channel full: resume next poll
    if (urgent_.key != 0) {
      send_chunk(urgent_);
      busy = true;
      continue;
    }
    if (queue_head_ == queue_tail_) return busy;
    Request r = queue_[queue_head_++ % kQueue];
    busy = true;
    if (r.raise_lane >= 0) {
      // S3: the page is partly on this bulk channel: finish it there, now, flagged urgent.
      Lane& lane = bulk_[static_cast<size_t>(r.raise_lane)];
      if (lane.key == r.key) lane.urgent = true;
      while (lane.key == r.key) {
        if (!room_for_chunk(lane)) {
          queue_[--queue_head_ % kQueue] = r;  // retry this entry first next time
          return true;
        }
        send_chunk(lane);
      }
      continue;
    }
    uint32_t block = key_block(r.key);
    if (bulk_.empty() && bulk_mid_huge_page())  // urgent-only sender: S1 without a pause
      counters_.preemptions.fetch_add(1, std::memory_order_relaxed);
    counters_.urgent_pages.fetch_add(1, std::memory_order_relaxed);
    if (state_.free_zero.block(block).test(key_page(r.key)) ||
        !state_.blocks[block]->populated(key_page(r.key))) {
      queue_zero_range(urgent_, block, key_page(r.key), 1);  // free or never populated: not read
      continue;
    }
    start_page(urgent_, block, key_page(r.key), r.key);
  }
}

bool SenderPoller::step_bulk(Lane& lane, int budget) {
  bool busy = false;
  // The window was full at the last poll and still is: busy unless the lane can sleep on it.
  if (!drain(lane)) return !sleeps_on_window(lane) && !polls_window(lane);
  for (int i = 0; i < budget; ++i) {
    if (!room_for_chunk(lane)) return busy || (!sleeps_on_window(lane) && !polls_window(lane));
    if (lane.key == 0) {
      const uint32_t round = state_.round.load(std::memory_order_acquire);
      if (round == 0 || lane.slot->round_done.load(std::memory_order_relaxed) == round)
        return busy;
      if (!tokens_available()) return busy;
      const Next next = next_dirty_page(lane);
      if (next == Next::kNone) {
        // Every page of this round that this lane claimed is queued: the round end follows them
        // (the backlog keeps the order; it is posted at the end of this poll).
        queue_marker(lane, make_header(FrameType::kRoundEnd, 0, 0, 0, 0, round, lane.index));
        lane.slot->round_done.store(round, std::memory_order_release);
        return true;
      }
      if (next == Next::kZeroRange) {  // one frame queued, nothing read: counts as a chunk
        busy = true;
        continue;
      }
    } else if (lane.slot->raised.load(std::memory_order_acquire)) {
      lane.urgent = true;
    }
    send_chunk(lane);
    busy = true;
  }
  return busy;
}

bool SenderPoller::room_for_chunk(Lane& lane) {
  const size_t need =
      std::min<size_t>(kBacklog, state_.chunk_size / kTargetPageSize * page_slots());
  if (backlog_free(lane) >= need) return true;
  return drain(lane);
}

SenderPoller::Next SenderPoller::next_dirty_page(Lane& lane) {
  const uint32_t round = state_.round.load(std::memory_order_acquire);
  if (lane.round != round) {
    lane.round = round;
    lane.stripe_next = lane.stripe_end = 0;
    lane.res_count = 0;  // what a window said is a round old: pages may have been written since
  }
  while (true) {
    if (lane.stripe_next >= lane.stripe_end) {
      uint64_t start = state_.cursor.fetch_add(state_.stripe_pages, std::memory_order_relaxed);
      if (start >= state_.total_host_pages) return Next::kNone;
      lane.stripe_next = start;
      lane.stripe_end = std::min(start + state_.stripe_pages, state_.total_host_pages);
    }
    uint32_t block;
    uint64_t hp;
    state_.locate(lane.stripe_next, &block, &hp);
    const uint64_t block_base = state_.block_start[block];
    const uint64_t limit =
        std::min(lane.stripe_end, block_base + state_.blocks[block]->host_pages()) - block_base;
    AtomicBitmap& map = state_.dirty.block(block);
    uint64_t found = map.find_next_set(hp);
    if (found >= limit) {
      lane.stripe_next = block_base + limit;
      continue;
    }
    lane.stripe_next = block_base + found + 1;
    // Not read: never populated (zero by definition), or free (S5, postcopy's final round).
    const AtomicBitmap& free_zero = state_.free_zero.block(block);
    auto unread = [&](uint64_t hp) { return free_zero.test(hp) || !populated(lane, block, hp); };
    if (unread(found)) {
      // Never populated: zero without reading it. Claim the dirty, never-populated pages that
      // follow too (past the stripe if need be: a claim is a claim) and send one frame.
      if (!state_.dirty.claim(block, found)) continue;
      RamBlock* rb = state_.blocks[block];
      const uint64_t max_pages = kMaxZeroRange / rb->host_page_size();
      uint64_t end = found + 1;
      while (end < rb->host_pages() && end - found < max_pages && map.test(end) && unread(end) &&
             state_.dirty.claim(block, end))
        ++end;
      lane.stripe_next = std::max(lane.stripe_next, block_base + end);
      queue_zero_range(lane, block, found, end - found);
      return Next::kZeroRange;
    }
    const uint64_t key = page_key(block, found);
    // Publish before claiming so that a request racing with the claim finds this lane (S3).
    lane.slot->in_progress.store(key, std::memory_order_release);
    if (!state_.dirty.claim(block, found)) {
      lane.slot->in_progress.store(0, std::memory_order_release);
      continue;
    }
    state_.sent.block(block).set(found);
    const uint32_t run = claim_run(lane, block, found);
    lane.stripe_next = std::max(lane.stripe_next, block_base + found + run);
    start_page(lane, block, found, key, run);
    return Next::kPage;
  }
}

uint32_t SenderPoller::claim_run(Lane& lane, uint32_t block, uint64_t first) {
  RamBlock* rb = state_.blocks[block];
  if (!state_.page_runs || rb->host_page_size() != kTargetPageSize ||
      state_.postcopy.load(std::memory_order_relaxed))
    return 1;
  const uint64_t max_pages =
      std::min<uint64_t>({state_.chunk_size, kMaxPageRun, kBacklog * kTargetPageSize}) /
      kTargetPageSize;
  const AtomicBitmap& map = state_.dirty.block(block);
  AtomicBitmap& sent = state_.sent.block(block);
  uint64_t end = first + 1;
  while (end - first < max_pages && end < rb->host_pages() && map.test(end) &&
         populated(lane, block, end) && state_.dirty.claim(block, end))
    sent.set(end++);
  return static_cast<uint32_t>(end - first);
}

// A window may go stale within the round: a page written after it was read is in the dirty
// log, and the migration bitmap is synced from the log only between rounds, so that page is
// sent again in the next round. Windows are dropped at every round change.
bool SenderPoller::populated(Lane& lane, uint32_t block, uint64_t hp) {
  if (lane.res_count == 0 || lane.res_block != block || hp < lane.res_first ||
      hp >= lane.res_first + lane.res_count) {
    RamBlock* rb = state_.blocks[block];
    // About 16 MiB of 4 KiB pages (8 pagemap reads), 32 huge pages (one read each).
    const uint64_t window = rb->hugetlb() ? 32 : kResidencyWords * 64;
    lane.res_block = block;
    lane.res_first = hp;
    lane.res_count = std::min(window, rb->host_pages() - hp);
    rb->populated(hp, lane.res_count, lane.res_bits.data());
  }
  const uint64_t i = hp - lane.res_first;
  return (lane.res_bits[i / 64] >> (i % 64)) & 1;
}

void SenderPoller::queue_page_frame(Lane& lane, const FrameHeader& h, const uint8_t* payload) {
  if (state_.page_integrity && lane.sealer) {
    const bool data = static_cast<FrameType>(h.type) == FrameType::kPage;
    queue_marker(lane, h, data ? payload : nullptr, data ? h.length : 0);
    const uint64_t tag = sizeof(FrameHeader) + kSealedMarkerBytes;
    counters_.bytes.fetch_add(tag, std::memory_order_relaxed);
    charge(tag);
  }
  lane.backlog[lane.backlog_tail++ % kBacklog] = {h, payload};
}

void SenderPoller::queue_marker(Lane& lane, const FrameHeader& inner, const uint8_t* covered,
                                size_t covered_len) {
  const size_t at = lane.backlog_tail++ % kBacklog;
  if (!lane.sealer) {
    lane.backlog[at] = {inner, nullptr};
    return;
  }
  uint8_t* sealed = lane.sealed[at].data();
  if (!lane.sealer->seal(inner, covered, covered_len, &lane.backlog[at].hdr, sealed))
    fail(Status(Code::kInternal, "sealing a marker failed (libcrypto AES-256-GCM)"));
  lane.backlog[at].payload = sealed;
}

void SenderPoller::queue_zero_range(Lane& lane, uint32_t block, uint64_t first, uint64_t pages) {
  const uint32_t hp_size = state_.blocks[block]->host_page_size();
  state_.sent.block(block).set_range(first, first + pages);
  const uint32_t round = state_.round.load(std::memory_order_relaxed);
  const uint32_t flags = (lane.urgent ? kFlagUrgent : 0) | kFlagHostPageEnd;
  queue_page_frame(lane,
                   make_header(FrameType::kZero, block, first * hp_size,
                               static_cast<uint32_t>(pages * hp_size), flags, round, lane.index),
                   nullptr);
  const uint64_t bytes = sizeof(FrameHeader);
  counters_.bytes.fetch_add(bytes, std::memory_order_relaxed);
  counters_.host_pages.fetch_add(pages, std::memory_order_relaxed);
  counters_.zero_pages.fetch_add(pages * (hp_size / kTargetPageSize), std::memory_order_relaxed);
  counters_.zero_range_frames.fetch_add(1, std::memory_order_relaxed);
  (state_.postcopy.load(std::memory_order_relaxed) ? counters_.postcopy_bytes
                                                    : counters_.precopy_bytes)
      .fetch_add(bytes, std::memory_order_relaxed);
  charge(bytes);
}

void SenderPoller::start_page(Lane& lane, uint32_t block, uint64_t hp, uint64_t key,
                              uint32_t run_pages) {
  lane.key = key;
  lane.block = block;
  lane.hp = hp;
  lane.run_pages = run_pages;
  lane.next = 0;
  if (lane.slot) lane.urgent = lane.slot->raised.load(std::memory_order_acquire);
  counters_.host_pages.fetch_add(run_pages, std::memory_order_relaxed);
}

void SenderPoller::send_chunk(Lane& lane) {
  RamBlock* rb = state_.blocks[lane.block];
  const uint32_t hp_size = rb->host_page_size();
  const uint32_t span = hp_size * lane.run_pages;  // the host page, or the page run
  const uint8_t* page = rb->base() + lane.hp * hp_size;
  const uint32_t end = std::min<uint32_t>(lane.next + state_.chunk_size, span);
  const uint32_t round = state_.round.load(std::memory_order_relaxed);
  const bool postcopy = state_.postcopy.load(std::memory_order_relaxed);
  const uint32_t flags = lane.urgent ? kFlagUrgent : 0;
  const uint64_t page_off = lane.hp * uint64_t{hp_size};
  uint64_t bytes = 0, normal = 0, zero = 0;

  uint32_t run_start = lane.next;
  bool run_zero = is_zero_target_page(page + run_start);
  auto emit = [&](uint32_t from, uint32_t to, bool zero_run) {
    const uint32_t len = to - from;
    const uint32_t f = flags | (to % hp_size == 0 ? kFlagHostPageEnd : 0);
    queue_page_frame(lane,
                     make_header(zero_run ? FrameType::kZero : FrameType::kPage, lane.block,
                                 page_off + from, len, f, round, lane.index),
                     zero_run ? nullptr : page + from);
    bytes += sizeof(FrameHeader) + (zero_run ? 0 : len);
    (zero_run ? zero : normal) += len / kTargetPageSize;
  };
  uint32_t stop = end;
  for (uint32_t off = run_start + kTargetPageSize; off < end; off += kTargetPageSize) {
    bool z = is_zero_target_page(page + off);
    if (z != run_zero) {
      if (backlog_free(lane) < 2 * page_slots()) {  // room for the last frame only: end here
        stop = off;
        break;
      }
      emit(run_start, off, run_zero);
      run_start = off;
      run_zero = z;
    }
  }
  emit(run_start, stop, run_zero);
  lane.next = stop;

  counters_.bytes.fetch_add(bytes, std::memory_order_relaxed);
  counters_.normal_pages.fetch_add(normal, std::memory_order_relaxed);
  counters_.zero_pages.fetch_add(zero, std::memory_order_relaxed);
  (postcopy ? counters_.postcopy_bytes : counters_.precopy_bytes)
      .fetch_add(bytes, std::memory_order_relaxed);
  charge(bytes);
  if (stop == span) finish_page(lane);
}

void SenderPoller::finish_page(Lane& lane) {
  lane.key = 0;
  lane.next = 0;
  if (lane.slot) {
    lane.slot->in_progress.store(0, std::memory_order_release);
    lane.slot->raised.store(false, std::memory_order_release);
    lane.urgent = false;
  }
}

bool SenderPoller::drain(Lane& lane) {
  lane.tx_full = false;
  while (lane.backlog_head != lane.backlog_tail) {
    size_t head = lane.backlog_head % kBacklog;
    size_t contiguous = std::min(lane.backlog_tail - lane.backlog_head, kBacklog - head);
    size_t n = lane.channel->post(&lane.backlog[head], contiguous);
    if (n) lane.dirty_tx = true;
    lane.backlog_head += n;
    if (n < contiguous) {
      if (!lane.channel->error().is_ok()) {
        fail(lane.channel->error());
        return false;
      }
      // Window full: push what we have so the peer can make room; if that freed some, post on.
      const size_t pending = lane.channel->tx_pending();
      if (!lane.channel->flush()) {
        fail(lane.channel->error());
        return false;
      }
      lane.dirty_tx = false;
      lane.channel->poll_tx();
      if (n > 0 || lane.channel->tx_pending() < pending) continue;
      lane.tx_full = true;
      // A channel with a tx wait fd: the worker sleeps on it (kWaiting). Else wait a moment
      // without hammering the lines the receiver is writing (a hot spin here slowed the
      // receiver's copies several-fold on this 2-vCPU host).
      if (lane.channel->tx_wait_fd() >= 0 || polls_window(lane)) return false;
#if defined(__x86_64__) || defined(__i386__)
      for (int i = 0; i < 256; ++i) __builtin_ia32_pause();
#endif
      return false;
    }
  }
  return true;
}

bool SenderPoller::tokens_available() {
  const uint64_t max_bw = state_.max_bandwidth.load(std::memory_order_relaxed);
  if (max_bw == 0) return true;
  auto now = std::chrono::steady_clock::now();
  double rate = static_cast<double>(max_bw) * bandwidth_share_;
  double dt = std::chrono::duration<double>(now - bucket_time_).count();
  bucket_time_ = now;
  tokens_ = std::min(tokens_ + dt * rate, rate * 0.01);  // at most 10 ms of burst
  return tokens_ > 0;
}

void SenderPoller::charge(uint64_t bytes) {
  if (state_.max_bandwidth.load(std::memory_order_relaxed)) tokens_ -= static_cast<double>(bytes);
}

}  // namespace tern::engine
