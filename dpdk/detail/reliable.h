// Reliable, ordered delivery of one channel's segments over a lossy link: the send window
// (sequence numbers, cumulative + selective acks, retransmission on timeout and on SACK holes)
// and the receive window (duplicates dropped, out-of-order segments held until the gap fills).
// Plain C++ over opaque packet handles (rte_mbuf* in the channel, anything in tests), so the
// logic is unit-tested without DPDK (tests/dpdk/detail/reliable_test.cc).
//
// Threads: each window belongs to one channel and is used by its owner thread only.
#pragma once

#include <cstdint>
#include <vector>

#include "dpdk/detail/segment.h"

namespace tern::dpdk {

using Packet = void*;

// Sender side. Segments get consecutive seqs; [base, cursor) were transmitted at least once,
// [cursor, end) are built but not transmitted yet.
class TxWindow {
 public:
  explicit TxWindow(uint32_t capacity);  // a power of two

  uint32_t base() const { return base_; }
  uint32_t cursor() const { return cursor_; }
  uint32_t end() const { return end_; }
  uint32_t capacity() const { return cap_; }
  // Room for another segment: inside our capacity and below the receiver's wnd_end.
  bool can_push() const { return end_ - base_ < cap_ && seq_lt(end_, peer_wnd_end_); }
  // True when segments wait only because the receiver's window is closed.
  bool peer_window_closed() const { return end_ - base_ < cap_ && !seq_lt(end_, peer_wnd_end_); }
  bool empty() const { return base_ == end_; }

  uint32_t push(Packet p);
  Packet at(uint32_t seq) const { return slots_[seq & mask_].pkt; }
  // First transmission of [cursor, cursor+n) at `now_us`.
  void advance_cursor(uint32_t n, uint64_t now_us);

  // Applies an ack: calls release(Packet) for every segment it acknowledges cumulatively and
  // returns how many. SACKed segments are kept (released when the cumulative ack passes them)
  // but never retransmitted. Stale or out-of-range acks are ignored.
  template <typename Release>
  uint32_t on_ack(uint32_t ack, uint64_t sack, uint32_t wnd_end, uint64_t now_us,
                  Release&& release);

  // Calls resend(seq, Packet) for segments to send again: unacked for the timeout, or (fast
  // retransmit) below a SACKed segment and unsent for rto_us / 8. Updates their send time.
  // The timeout adapts as in RFC 6298 (srtt + 4 rttvar from segments acked without a resend,
  // never below rto_us) and doubles after each timeout-driven resend (up to 32x) until an ack
  // makes progress: a peer that is only slow (a descheduled thread on a busy host) is not
  // flooded with copies.
  // `fixed`: use rto_us as is (no estimate, no backoff), for a closing channel's last tries.
  template <typename Resend>
  uint32_t retransmit(uint64_t now_us, uint64_t rto_us, Resend&& resend, bool fixed = false);

  // Every packet still held, for teardown.
  template <typename Release>
  void clear(Release&& release);

  uint64_t last_ack_us() const { return last_ack_us_; }
  uint64_t timeout_us(uint64_t rto_min_us) const {
    const uint64_t adaptive = srtt_us_ + 4 * rttvar_us_;
    return (adaptive > rto_min_us ? adaptive : rto_min_us) * backoff_;
  }
  uint64_t retransmits() const { return retransmits_; }

 private:
  struct Slot {
    Packet pkt = nullptr;
    uint64_t sent_us = 0;
    bool sacked = false;
    bool resent = false;
  };
  void sample_rtt(uint64_t rtt_us);
  std::vector<Slot> slots_;
  uint32_t cap_, mask_;
  uint32_t base_ = 0, cursor_ = 0, end_ = 0;
  uint32_t peer_wnd_end_;
  uint32_t high_sacked_ = 0;  // one past the highest SACKed seq (== base_ when none)
  uint64_t last_ack_us_ = 0;
  uint64_t retransmits_ = 0;
  uint32_t backoff_ = 1;
  uint64_t srtt_us_ = 0, rttvar_us_ = 0;
};

// Receiver side. Segments are stored by seq; [next, recv_next) are all present (received,
// not yet delivered), later ones may be present out of order.
class RxWindow {
 public:
  explicit RxWindow(uint32_t capacity);  // a power of two

  enum class Verdict { kStored, kDuplicate, kBeyondWindow };
  // Keeps `p` for `seq` (kStored) or refuses it; the caller frees refused packets.
  Verdict offer(uint32_t seq, Packet p);
  // The packet for the next seq to deliver, or nullptr while it is missing.
  Packet front() const { return slots_[next_ & mask_]; }
  // The front packet was delivered (the caller owns it now).
  void pop();

  uint32_t next() const { return next_; }
  uint32_t ack() const { return recv_next_; }  // every seq before it was received
  uint64_t sack() const;                       // bit i: seq ack()+1+i held
  uint32_t wnd_end() const { return next_ + cap_; }
  bool holding() const { return next_ != recv_next_ || high_ != recv_next_; }

  template <typename Release>
  void clear(Release&& release);

 private:
  std::vector<Packet> slots_;
  uint32_t cap_, mask_;
  uint32_t next_ = 0;       // next seq to deliver
  uint32_t recv_next_ = 0;  // first seq not received
  uint32_t high_ = 0;       // one past the highest seq held
};

// ---- templates ----

template <typename Release>
uint32_t TxWindow::on_ack(uint32_t ack, uint64_t sack, uint32_t wnd_end, uint64_t now_us,
                          Release&& release) {
  // An ack may only cover what was transmitted.
  if (seq_lt(ack, base_) || seq_lt(cursor_, ack)) return 0;
  last_ack_us_ = now_us;
  if (seq_lt(peer_wnd_end_, wnd_end) && seq_le(wnd_end, ack + 2 * cap_)) peer_wnd_end_ = wnd_end;
  uint32_t n = 0;
  if (base_ != ack) {
    backoff_ = 1;
    const Slot& newest = slots_[(ack - 1) & mask_];
    if (!newest.resent && newest.sent_us != 0) sample_rtt(now_us - newest.sent_us);
  }
  while (base_ != ack) {
    Slot& s = slots_[base_ & mask_];
    release(s.pkt);
    s = Slot{};
    ++base_;
    ++n;
  }
  if (seq_lt(high_sacked_, base_)) high_sacked_ = base_;
  for (uint32_t i = 0; sack != 0 && i < 64; ++i, sack >>= 1) {
    if (!(sack & 1)) continue;
    uint32_t seq = ack + 1 + i;
    if (!seq_lt(seq, cursor_)) break;
    slots_[seq & mask_].sacked = true;
    if (seq_le(high_sacked_, seq)) high_sacked_ = seq + 1;
  }
  return n;
}

template <typename Resend>
uint32_t TxWindow::retransmit(uint64_t now_us, uint64_t rto_us, Resend&& resend, bool fixed) {
  uint32_t n = 0;
  bool timed_out = false;
  const uint64_t fast = rto_us / 8, timeout = fixed ? rto_us : timeout_us(rto_us);
  for (uint32_t seq = base_; seq != cursor_; ++seq) {
    Slot& s = slots_[seq & mask_];
    if (s.sacked) continue;
    const uint64_t age = now_us - s.sent_us;
    const bool expired = age >= timeout;
    if (expired || (seq_lt(seq, high_sacked_) && age >= fast)) {
      timed_out |= expired;
      resend(seq, s.pkt);
      s.sent_us = now_us;
      s.resent = true;
      ++n;
    }
  }
  if (timed_out && !fixed && backoff_ < 32) backoff_ *= 2;
  retransmits_ += n;
  return n;
}

template <typename Release>
void TxWindow::clear(Release&& release) {
  for (uint32_t seq = base_; seq != end_; ++seq) release(slots_[seq & mask_].pkt);
  for (Slot& s : slots_) s = Slot{};
  base_ = cursor_ = end_;
}

template <typename Release>
void RxWindow::clear(Release&& release) {
  for (Packet& p : slots_) {
    if (p) release(p);
    p = nullptr;
  }
}

}  // namespace tern::dpdk
