#include "dpdk/detail/dpdk_channel.h"

#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <thread>

#include "dpdk/detail/eal.h"
#include "dpdk/detail/intr_guard.h"
#include "dpdk/detail/port.h"
#include "dpdk/detail/tx_extbuf.h"

namespace tern::dpdk {
namespace {

constexpr uint32_t kBurst = 32;
// Receive bursts one poll_rx takes at most: 64 segments, 512 KiB, about 50 us of copying here.
constexpr uint32_t kPumpsPerPoll = 2;
constexpr size_t kSegHeaderOffset = kEtherHeaderBytes;
constexpr size_t kFrameHeaderOffset = kEtherHeaderBytes + sizeof(SegHeader);
constexpr size_t kFragmentOffset = kEtherHeaderBytes + kDataHeaderBytes;
// A closing channel with unacknowledged frames (say the destination's last control reply)
// resends them every kLingerResendUs for up to kLinger: the peer is usually still polling, and
// after the channel is gone nobody would resend a lost segment.
constexpr auto kLinger = std::chrono::milliseconds(50);
constexpr uint64_t kLingerResendUs = 2000;

void release(Packet p) { rte_pktmbuf_free(static_cast<rte_mbuf*>(p)); }

// A reference on every mbuf of a chain: rte_pktmbuf_free drops one from each of them, so a
// window that keeps a segment the PMD frees must hold all of them, not only the first.
void hold(rte_mbuf* m, int16_t delta) {
  for (; m != nullptr; m = m->next) rte_mbuf_refcnt_update(m, delta);
}

// The same zero-copy segment built afresh for a resend, its checksum taken over the page's
// bytes as they are now: a page the guest wrote to since the first send would otherwise fail
// the receiver's check on every resend (precopy sends the dirtied page again anyway).
rte_mbuf* rebuilt(const rte_mbuf* m) {
  const rte_mbuf* p = m->next;
  const auto* payload = rte_pktmbuf_mtod(p, const uint8_t*);
  const uint16_t len = rte_pktmbuf_data_len(p);
  uint8_t hdr[kFragmentOffset];
  std::memcpy(hdr, rte_pktmbuf_mtod(m, const uint8_t*), sizeof hdr);
  SegHeader h;
  std::memcpy(&h, hdr + kSegHeaderOffset, sizeof h);
  h.sum = segment_sum(h, data_rest_sum(h, hdr + kFrameHeaderOffset, payload, len));
  std::memcpy(hdr + kSegHeaderOffset, &h, sizeof h);
  return ext_segment(header_pool(), hdr, sizeof hdr, payload, len,
                     static_cast<ExtRef*>(p->shinfo->fcb_opaque));
}

const SegHeader* seg_of(const rte_mbuf* m) {
  return rte_pktmbuf_mtod_offset(m, const SegHeader*, kSegHeaderOffset);
}

}  // namespace

DpdkChannel::DpdkChannel(std::shared_ptr<Port> port, uint16_t queue, const ChannelConfig& config)
    : port_(std::move(port)),
      port_id_(port_->id()),
      queue_(queue),
      config_(config),
      txw_(config.window),
      rxw_(config.window),
      faults_(config.faults, queue) {
  timer_fd_ = ::timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
  acked_wnd_end_ = rxw_.wnd_end();
  last_touch_us_ = now_us();
  port_->keep(this);
}

void DpdkChannel::keep_alive(uint64_t now) {
  constexpr uint64_t kIdleUs = 5000;
  if (now - last_touch_us_.load(std::memory_order_relaxed) < kIdleUs) return;
  std::unique_lock<std::mutex> lock(mu_, std::try_to_lock);
  if (!lock.owns_lock() || failed()) return;
  register_thread();
  pump(now);
  service(now);
}

DpdkChannel::~DpdkChannel() {
  register_thread();
  port_->unkeep(this);  // the keeper no longer calls us (it holds the port's list lock)
  // A FIN after everything built so far, so the peer reports the close after the last frame;
  // resend what is still unacknowledged for a while (like SO_LINGER).
  // Queues accept() opened but no hello claimed were never part of the session: no FIN.
  if (index_ != tern::toolkit::kUnknownIndex && !failed() && !peer_fin_ && txw_.can_push()) {
    while (built_ < posted_ && build_segment()) {
    }
    rte_mbuf* m = rte_pktmbuf_alloc(packet_pool());
    if (m != nullptr) {
      uint8_t* d = reinterpret_cast<uint8_t*>(
          rte_pktmbuf_append(m, kEtherHeaderBytes + sizeof(SegHeader)));
      port_->write_ether(d);
      SegHeader h{kSegMagic, static_cast<uint8_t>(SegKind::kFin), want_flag(), queue_,
                  txw_.end(), 0, 0, 0, 0, 0, 0, 0};
      h.sum = segment_sum(h, 0);
      std::memcpy(d + kSegHeaderOffset, &h, sizeof h);
      txw_.push(m);
      const auto until = std::chrono::steady_clock::now() + kLinger;
      transmit_new(now_us());
      // Until the FIN (and so everything before it) is acknowledged, or the peer closed too;
      // pumping meanwhile also acknowledges what the peer still resends to us.
      while (!txw_.empty() && !peer_fin_ && !link_down_ &&
             std::chrono::steady_clock::now() < until) {
        const uint64_t now = now_us();
        pump(now);
        service(now);
        rte_mbuf* batch[kBurst];
        uint32_t n = 0;
        txw_.retransmit(
            now, kLingerResendUs,
            [&](uint32_t, Packet p) {
              if (n < kBurst) batch[n++] = static_cast<rte_mbuf*>(p);
            },
            true);
        if (n) resend(batch, n);
        std::this_thread::sleep_for(std::chrono::microseconds(200));
      }
    }
  }
  if (std::getenv("TERN_DPDK_DEBUG"))
    std::fprintf(stderr,
                 "dpdk channel %u queue %u: sent %lu segments, %lu resent, %lu bad checksum, %lu "
                 "payloads unchecked, "
                 "%lu duplicates, %lu injected drops; tx base %u cursor %u end %u; rx next %u "
                 "ack %u; frames posted %lu built %lu completed %lu\n",
                 index_, queue_, stats().segments_sent, stats().retransmits, stats().bad_checksum,
                 stats().payloads_unchecked,
                 stats().duplicates, stats().injected_drops, txw_.base(), txw_.cursor(), txw_.end(),
                 rxw_.next(), rxw_.ack(), posted_, built_, completed_);
  txw_.clear(release);
  for (uint64_t f = completed_; f < posted_; ++f) {
    Slot& s = slots_[f % kSlots];
    if (s.ext == nullptr) continue;
    if (!s.ext_released) ext_ref_release(s.ext);
    ext_ref_forget(s.ext);
    s.ext = nullptr;
  }
  rxw_.clear(release);
  faults_.clear(release);
  if (timer_fd_ >= 0) ::close(timer_fd_);
}

ChannelStats DpdkChannel::stats() const {
  ChannelStats s = stats_;
  s.retransmits = txw_.retransmits();
  s.injected_drops = faults_.dropped();
  return s;
}

// ---- transmit ----

size_t DpdkChannel::post(const TxFrame* frames, size_t n) {
  register_thread();
  std::lock_guard<std::mutex> lock(mu_);
  last_touch_us_.store(now_us(), std::memory_order_relaxed);
  if (failed()) return 0;
  const uint64_t room = kSlots - (posted_ - completed_);
  if (n > room) n = room;
  for (size_t i = 0; i < n; ++i) {
    const TxFrame& f = frames[i];
    const uint32_t len = tern::toolkit::payload_length(f.hdr);
    if (len != 0 && f.payload == nullptr) {
      fail(Status(Code::kInvalidArgument,
                  "channel " + std::to_string(index_) + ": frame posted without its payload"));
      return i;
    }
    Slot& s = slots_[posted_ % kSlots];
    tern::toolkit::store_frame(s, f, len);
    s.len = len;
    s.built = 0;
    s.ext = nullptr;
    s.ext_released = false;
    ++posted_;
  }
  return n;
}

bool DpdkChannel::build_segment() {
  if (built_ == posted_ || !txw_.can_push()) return false;
  Slot& s = slots_[built_ % kSlots];
  const uint32_t frag = std::min(kSegmentPayload, s.len - s.built);
  if (config_.zero_copy && frag != 0 && static_cast<FrameType>(s.hdr.type) == FrameType::kPage)
    return build_ext_segment(s, frag);
  rte_mbuf* m = rte_pktmbuf_alloc(packet_pool());
  if (m == nullptr) return false;  // pool empty: acks will return buffers
  auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFragmentOffset + frag));
  if (d == nullptr) {  // cannot happen (packet buffers hold a whole segment); keeps GCC sure
    rte_pktmbuf_free(m);
    return false;
  }
  port_->write_ether(d);
  SegHeader h{kSegMagic, static_cast<uint8_t>(SegKind::kData), data_flags(), queue_,
              txw_.end(), 0, 0, s.built, frag, 0, 0, 0};
  std::memcpy(d + kFrameHeaderOffset, &s.hdr, sizeof(FrameHeader));
  uint64_t sum = sum_bytes(d + kFrameHeaderOffset, sizeof(FrameHeader));
  if (frag != 0 && (h.flags & kSegPayloadSummed))
    sum = copy_sum(d + kFragmentOffset, s.payload + s.built, frag, sum);
  else if (frag != 0)
    std::memcpy(d + kFragmentOffset, s.payload + s.built, frag);
  h.sum = segment_sum(h, sum);
  std::memcpy(d + kSegHeaderOffset, &h, sizeof h);
  s.last_seq = txw_.push(m);
  s.built += frag;
  if (s.built == s.len) ++built_;
  return true;
}

// Zero-copy: the header is built here, the fragment stays in guest memory (tx_extbuf.h); its
// checksum is a read of the fragment, which the PMD then copies while it is still in cache.
bool DpdkChannel::build_ext_segment(Slot& s, uint32_t frag) {
  if (s.ext == nullptr) s.ext = ext_ref_new();
  uint8_t hdr[kFragmentOffset];
  port_->write_ether(hdr);
  SegHeader h{kSegMagic, static_cast<uint8_t>(SegKind::kData), data_flags(), queue_,
              txw_.end(), 0, 0, s.built, frag, 0, 0, 0};
  std::memcpy(hdr + kFrameHeaderOffset, &s.hdr, sizeof(FrameHeader));
  const uint8_t* payload = s.payload + s.built;
  h.sum = segment_sum(h, data_rest_sum(h, hdr + kFrameHeaderOffset, payload, frag));
  std::memcpy(hdr + kSegHeaderOffset, &h, sizeof h);
  rte_mbuf* m = ext_segment(header_pool(), hdr, sizeof hdr, payload,
                            static_cast<uint16_t>(frag), s.ext);
  if (m == nullptr) return false;  // pool empty: acks will return buffers
  s.last_seq = txw_.push(m);
  s.built += frag;
  if (s.built == s.len) ++built_;
  return true;
}

void DpdkChannel::resend(rte_mbuf** pkts, uint32_t n) {
  rte_mbuf* out[kBurst];
  uint32_t k = 0;
  for (uint32_t i = 0; i < n && k < kBurst; ++i) {
    if (is_ext_segment(pkts[i])) {
      if ((out[k] = rebuilt(pkts[i])) != nullptr) ++k;
    } else {
      hold(pkts[i], 1);  // the window's reference stays
      out[k++] = pkts[i];
    }
  }
  uint16_t sent = guarded_tx_burst(port_id_, queue_, out, static_cast<uint16_t>(k));
  stats_.segments_sent += sent;
  for (uint32_t i = sent; i < k; ++i) rte_pktmbuf_free(out[i]);
}

void DpdkChannel::send_batch(rte_mbuf** pkts, uint32_t n, bool keep) {
  if (keep)
    for (uint32_t i = 0; i < n; ++i) hold(pkts[i], 1);  // the window's ref
  uint16_t sent = guarded_tx_burst(port_id_, queue_, pkts, static_cast<uint16_t>(n));
  stats_.segments_sent += sent;
  for (uint32_t i = sent; i < n; ++i) {
    if (keep)
      hold(pkts[i], -1);
    else
      rte_pktmbuf_free(pkts[i]);
  }
}

void DpdkChannel::transmit_new(uint64_t now) {
  rte_mbuf* batch[kBurst];
  while (txw_.cursor() != txw_.end()) {
    uint32_t n = std::min<uint32_t>(kBurst, txw_.end() - txw_.cursor());
    for (uint32_t i = 0; i < n; ++i) {
      batch[i] = static_cast<rte_mbuf*>(txw_.at(txw_.cursor() + i));
      hold(batch[i], 1);
    }
    uint16_t sent = guarded_tx_burst(port_id_, queue_, batch, static_cast<uint16_t>(n));
    for (uint32_t i = sent; i < n; ++i) hold(batch[i], -1);
    stats_.segments_sent += sent;
    txw_.advance_cursor(sent, now);
    if (sent < n) break;  // the ring is full: the rest goes next time
  }
}

void DpdkChannel::send_control(uint8_t kind, uint32_t seq) {
  rte_mbuf* m = rte_pktmbuf_alloc(packet_pool());
  if (m == nullptr) return;
  auto* d = reinterpret_cast<uint8_t*>(rte_pktmbuf_append(m, kFrameHeaderOffset));
  port_->write_ether(d);
  SegHeader h{kSegMagic, kind, want_flag(), queue_, seq, rxw_.ack(), rxw_.wnd_end(), 0, 0, 0,
              rxw_.sack(), 0};
  h.sum = segment_sum(h, 0);
  std::memcpy(d + kSegHeaderOffset, &h, sizeof h);
  send_batch(&m, 1, false);
  if (kind == static_cast<uint8_t>(SegKind::kAck)) {
    acked_wnd_end_ = h.wnd_end;
    need_ack_ = false;
  }
}

void DpdkChannel::advance_frames() {
  while (sent_frames_ < built_ && seq_lt(slots_[sent_frames_ % kSlots].last_seq, txw_.cursor()))
    ++sent_frames_;
  while (completed_ < sent_frames_ && seq_lt(slots_[completed_ % kSlots].last_seq, txw_.base())) {
    Slot& s = slots_[completed_ % kSlots];
    if (s.ext != nullptr) {
      // Acknowledged; complete once no mbuf points into the page any more.
      if (!s.ext_released) {
        s.ext_released = true;
        ext_ref_release(s.ext);
      }
      if (!ext_ref_done(s.ext)) break;
      ext_ref_forget(s.ext);
      s.ext = nullptr;
    }
    s.payload = nullptr;
    ++completed_;
  }
}

void DpdkChannel::service(uint64_t now) {
  while (build_segment()) {
    if (txw_.end() - txw_.cursor() >= kBurst) transmit_new(now);
  }
  transmit_new(now);
  // Resends: scanned at most every rto/8 (the scan walks the whole window).
  if (!txw_.empty() && now - last_scan_us_ >= config_.rto_us / 8) {
    last_scan_us_ = now;
    rte_mbuf* batch[kBurst];
    uint32_t n = 0;
    txw_.retransmit(now, config_.rto_us, [&](uint32_t, Packet p) {
      if (n == kBurst) {
        resend(batch, n);
        n = 0;
      }
      batch[n++] = static_cast<rte_mbuf*>(p);
    });
    if (n) resend(batch, n);
  }
  // The receiver's window is closed and no ack came for an RTO: ask for one (it may be lost).
  if (built_ < posted_ && txw_.peer_window_closed() && now - txw_.last_ack_us() >= config_.rto_us &&
      now - last_probe_us_ >= config_.rto_us) {
    last_probe_us_ = now;
    send_control(static_cast<uint8_t>(SegKind::kProbe), 0);
  }
  if (need_ack_ || rxw_.wnd_end() - acked_wnd_end_ >= config_.window / 4)
    send_control(static_cast<uint8_t>(SegKind::kAck), 0);
  advance_frames();
}

bool DpdkChannel::flush() {
  register_thread();
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t now = now_us();  // one clock read per call (a visible share of a receiver)
  last_touch_us_.store(now, std::memory_order_relaxed);
  if (failed()) return false;
  // A peer's FIN is reported by poll_rx, after the frames before it; flush keeps working so
  // that a last reply can still be resent and acknowledged.
  if (link_down_) {
    fail(Status(Code::kIo, "peer closed channel " + std::to_string(index_) + " (link down)"));
    return false;
  }
  pump(now);  // acks open the window (a sender may never call poll_tx)
  service(now);
  return !failed();
}

size_t DpdkChannel::poll_tx() {
  register_thread();
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t now = now_us();
  last_touch_us_.store(now, std::memory_order_relaxed);
  if (failed()) return 0;
  pump(now);
  service(now);
  const size_t done = completed_ - reported_;
  reported_ = completed_;
  return visible_tx(done);
}

// ---- receive ----

void DpdkChannel::take_segment(rte_mbuf* m, uint64_t now) {
  if (m->nb_segs > 1 && rte_pktmbuf_linearize(m) != 0) {
    rte_pktmbuf_free(m);
    return;
  }
  const uint32_t len = rte_pktmbuf_data_len(m);
  const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
  if (len < kFrameHeaderOffset || d[12] != (kEtherType >> 8) || d[13] != (kEtherType & 0xff)) {
    rte_pktmbuf_free(m);
    return;
  }
  SegHeader h;
  std::memcpy(&h, d + kSegHeaderOffset, sizeof h);
  const auto kind = static_cast<SegKind>(h.kind);
  uint64_t rest = 0;
  bool ok = h.magic == kSegMagic && h.queue == queue_;
  bool unsummed = false;
  if (ok && kind == SegKind::kData) {
    ok = len >= kFragmentOffset + static_cast<size_t>(h.frag_len) && h.frag_len <= kSegmentPayload;
    if (ok) {
      rest = data_rest_sum(h, d + kFrameHeaderOffset, d + kFragmentOffset, h.frag_len);
      // A payload we cannot check, where we asked for sums: treat it as corrupt.
      unsummed = !(h.flags & kSegPayloadSummed) && config_.verify_payload;
    }
  }
  if (ok && (segment_sum(h, rest) != h.sum || unsummed)) {
    ++stats_.bad_checksum;
    ok = false;
  }
  if (!ok) {
    rte_pktmbuf_free(m);
    return;
  }
  peer_wants_sums_ = (h.flags & kSegWantSums) != 0;
  if (kind == SegKind::kData && !(h.flags & kSegPayloadSummed)) ++stats_.payloads_unchecked;
  switch (kind) {
    case SegKind::kData:
    case SegKind::kFin:
      if (rxw_.offer(h.seq, m) != RxWindow::Verdict::kStored) {
        ++stats_.duplicates;
        rte_pktmbuf_free(m);
      } else if (kind == SegKind::kFin) {
        peer_fin_ = true;
      }
      need_ack_ = true;
      return;
    case SegKind::kAck:
      txw_.on_ack(h.ack, h.sack, h.wnd_end, now, release);
      break;
    case SegKind::kProbe:
      need_ack_ = true;
      break;
  }
  rte_pktmbuf_free(m);
}

size_t DpdkChannel::pump(uint64_t now) {
  rte_mbuf* raw[kBurst];
  uint16_t n = 0;
  if (port_->steers()) {
    n = guarded_rx_burst(port_id_, queue_, raw, kBurst);
  } else {
    n = port_->take_handed(queue_, raw, kBurst);  // sorted by queue from all of the port's
  }
  if (n == 0 && !faults_.holding()) {
    // Cheap enough every few hundred idle polls: is the peer still there?
    if ((++idle_pumps_ & 255) == 0) {
      if (port_->link_up())
        link_seen_up_ = true;
      else
        link_down_ = link_seen_up_;
    }
    return 0;
  }
  if (config_.faults.any()) {
    Packet out[2 * kBurst + FaultInjector::kMaxHeld];
    size_t k = faults_.apply(
        reinterpret_cast<Packet*>(raw), n, out, release,
        [](Packet p) {
          rte_mbuf_refcnt_update(static_cast<rte_mbuf*>(p), 1);
          return p;
        },
        [](Packet& p, uint64_t r) {
          // Corrupt a private copy: with net_ring the sender still holds this very buffer.
          auto* m = static_cast<rte_mbuf*>(p);
          rte_mbuf* c = rte_pktmbuf_copy(m, m->pool, 0, UINT32_MAX);
          if (c == nullptr) return;
          rte_pktmbuf_free(m);
          auto* d = rte_pktmbuf_mtod(c, uint8_t*);
          const uint32_t len = rte_pktmbuf_data_len(c);
          d[kSegHeaderOffset + r % (len - kSegHeaderOffset)] ^= static_cast<uint8_t>(1u << (r >> 61));
          p = c;
        });
    for (size_t i = 0; i < k; ++i) take_segment(static_cast<rte_mbuf*>(out[i]), now);
  } else {
    for (uint16_t i = 0; i < n; ++i) take_segment(raw[i], now);
  }
  link_seen_up_ = true;
  return n;
}

bool DpdkChannel::fin_at_front() const {
  auto* m = static_cast<const rte_mbuf*>(rxw_.front());
  return m != nullptr && seg_of(m)->kind == static_cast<uint8_t>(SegKind::kFin);
}

// Consumes the in-order front segment. Returns true when it completed a frame (written to
// `out`); `stop` asks poll_rx to return now. On a protocol error the channel fails.
bool DpdkChannel::deliver(RxFrame& out, bool& stop) {
  auto* m = static_cast<rte_mbuf*>(rxw_.front());
  const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
  SegHeader h;
  std::memcpy(&h, d + kSegHeaderOffset, sizeof h);
  FrameHeader fh;
  std::memcpy(&fh, d + kFrameHeaderOffset, sizeof fh);
  const auto type = static_cast<FrameType>(fh.type);
  if (h.frag_off == 0) {
    if (cur_active_ || !accept_header(fh)) {
      if (cur_active_)
        fail(Status(Code::kProtocol, "channel " + std::to_string(index_) +
                                         ": a frame started before the previous one ended"));
      return false;
    }
    const uint32_t len = tern::toolkit::payload_length(fh);
    cur_hdr_ = fh;
    cur_got_ = 0;
    cur_dst_ = nullptr;
    if (type == FrameType::kPage) {
      cur_dst_ = land_page(fh);
      if (cur_dst_ == nullptr) return false;
    } else if (len != 0) {
      rx_control_.resize(len);  // control tier: grows once, then reused
      cur_dst_ = rx_control_.data();
    }
    cur_active_ = true;
  } else if (!cur_active_ || h.frag_off != cur_got_ ||
             std::memcmp(&fh, &cur_hdr_, sizeof fh) != 0) {
    fail(Status(Code::kProtocol, "channel " + std::to_string(index_) +
                                     ": fragment at offset " + std::to_string(h.frag_off) +
                                     " does not continue the frame being received"));
    return false;
  }
  const uint32_t len = tern::toolkit::payload_length(cur_hdr_);
  if (h.frag_len > len - cur_got_) {
    fail(Status(Code::kProtocol, "channel " + std::to_string(index_) +
                                     ": fragment runs past the frame's length"));
    return false;
  }
  if (h.frag_len) {
    // Pages are written as the landing says (streamed into guest RAM); control payloads copy.
    if (static_cast<FrameType>(cur_hdr_.type) == FrameType::kPage)
      landing_->copy_fragment(cur_dst_ + cur_got_, d + kFragmentOffset, h.frag_len);
    else
      std::memcpy(cur_dst_ + cur_got_, d + kFragmentOffset, h.frag_len);
  }
  cur_got_ += h.frag_len;
  rxw_.pop();
  rte_pktmbuf_free(m);
  if (cur_got_ != len) return false;
  Landing::end_fragments();  // the fragments' streamed stores, before the frame is reported
  cur_active_ = false;
  out.hdr = cur_hdr_;
  out.data = cur_dst_;
  stop = ends_staged_batch(cur_hdr_) || (type != FrameType::kPage && len != 0);
  return true;
}

size_t DpdkChannel::poll_rx(RxFrame* out, size_t max) {
  register_thread();
  std::lock_guard<std::mutex> lock(mu_);
  const uint64_t now = now_us();
  last_touch_us_.store(now, std::memory_order_relaxed);
  if (failed() || max == 0) return 0;
  drain_timer(now);
  size_t pumped = pump(now);
  uint32_t pumps = 1;
  size_t n = 0;
  bool stop = false;
  while (!stop && !failed()) {
    if (rxw_.front() == nullptr) {
      // A full burst may have more behind it; but return after kPumpsPerPoll bursts even in the
      // middle of a frame, so a worker that also serves the urgent channel gets back to it.
      if (pumped < kBurst || pumps++ == kPumpsPerPoll || (pumped = pump(now)) == 0 ||
          rxw_.front() == nullptr)
        break;
    }
    if (fin_at_front()) {
      fail_peer_closed();
      break;
    }
    // A new frame only while there is room for it in `out`.
    if (!cur_active_ && n == max) break;
    if (deliver(out[n], stop)) ++n;
    // Open the sender's window as we go, not only when this call ends.
    if (rxw_.wnd_end() - acked_wnd_end_ >= config_.window / 4)
      send_control(static_cast<uint8_t>(SegKind::kAck), 0);
  }
  if (!failed()) {
    if (n == 0 && link_down_ && rxw_.front() == nullptr) {
      fail(Status(Code::kIo, "peer closed channel " + std::to_string(index_) + " (link down)"));
    } else {
      service(now);
      if (n == 0 && rxw_.front() == nullptr) arm_timer(now);
    }
  }
  return n;
}

void DpdkChannel::arm_timer(uint64_t now) {
  if (timer_armed_ || timer_fd_ < 0) return;
  itimerspec its{};
  its.it_value.tv_sec = config_.idle_us / 1000000;
  its.it_value.tv_nsec = (config_.idle_us % 1000000) * 1000;
  ::timerfd_settime(timer_fd_, 0, &its, nullptr);
  timer_armed_ = true;
  timer_due_us_ = now + config_.idle_us;
}

void DpdkChannel::drain_timer(uint64_t now) {
  if (!timer_armed_ || now < timer_due_us_) return;
  uint64_t v;
  ssize_t r = ::read(timer_fd_, &v, sizeof v);
  (void)r;
  timer_armed_ = false;
}

}  // namespace tern::dpdk
