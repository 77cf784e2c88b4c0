#include "dpdk/detail/reliable.h"

namespace tern::dpdk {

TxWindow::TxWindow(uint32_t capacity)
    : slots_(capacity), cap_(capacity), mask_(capacity - 1), peer_wnd_end_(capacity) {}

uint32_t TxWindow::push(Packet p) {
  Slot& s = slots_[end_ & mask_];
  s.pkt = p;
  s.sent_us = 0;
  s.sacked = false;
  s.resent = false;
  return end_++;
}

void TxWindow::advance_cursor(uint32_t n, uint64_t now_us) {
  for (uint32_t i = 0; i < n; ++i) slots_[(cursor_ + i) & mask_].sent_us = now_us;
  cursor_ += n;
}

void TxWindow::sample_rtt(uint64_t rtt) {
  if (srtt_us_ == 0) {
    srtt_us_ = rtt;
    rttvar_us_ = rtt / 2;
    return;
  }
  const uint64_t diff = rtt > srtt_us_ ? rtt - srtt_us_ : srtt_us_ - rtt;
  rttvar_us_ = (3 * rttvar_us_ + diff) / 4;
  srtt_us_ = (7 * srtt_us_ + rtt) / 8;
}

RxWindow::RxWindow(uint32_t capacity)
    : slots_(capacity, nullptr), cap_(capacity), mask_(capacity - 1) {}

RxWindow::Verdict RxWindow::offer(uint32_t seq, Packet p) {
  if (seq_lt(seq, next_)) return Verdict::kDuplicate;
  if (!seq_lt(seq, next_ + cap_)) return Verdict::kBeyondWindow;
  Packet& slot = slots_[seq & mask_];
  if (slot != nullptr) return Verdict::kDuplicate;
  slot = p;
  if (seq_le(high_, seq)) high_ = seq + 1;
  while (recv_next_ != next_ + cap_ && slots_[recv_next_ & mask_] != nullptr) ++recv_next_;
  return Verdict::kStored;
}

void RxWindow::pop() {
  slots_[next_ & mask_] = nullptr;
  ++next_;
}

uint64_t RxWindow::sack() const {
  uint64_t bits = 0;
  for (uint32_t i = 0; i < 64; ++i) {
    uint32_t seq = recv_next_ + 1 + i;
    if (!seq_lt(seq, high_)) break;
    if (slots_[seq & mask_] != nullptr) bits |= 1ull << i;
  }
  return bits;
}

}  // namespace tern::dpdk
