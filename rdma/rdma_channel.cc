#include "rdma/rdma_channel.h"

#include <sys/epoll.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstring>
#include <thread>

namespace tern::rdma {

using detail::SlotKind;

namespace {
constexpr uint64_t kSeqMask = (uint64_t{1} << 56) - 1;

uint64_t op_code(Opcode op) {
  switch (op) {
    case Opcode::kWriteImm: return 1;
    case Opcode::kSendImm: return 2;
    case Opcode::kWrite: return 3;
  }
  return 0;
}
}  // namespace

RdmaChannel::RdmaChannel(std::unique_ptr<Connection> conn, std::shared_ptr<MemoryMap> memory)
    : conn_(std::move(conn)),
      memory_(std::move(memory)),
      sq_depth_(conn_->sq_depth()),
      peer_(conn_->peer()),
      queue_(std::make_unique<Slot[]>(kQueue)),
      credits_(peer_.slots ? peer_.slots : 1, 1),
      frames_at_(sq_depth_),
      rx_imm_(kSlots),
      rx_len_(kSlots) {
  epoll_fd_ = ::epoll_create1(EPOLL_CLOEXEC);
  for (int fd : {conn_->cq_fd(), conn_->cm_fd()}) {
    if (fd < 0) continue;
    epoll_event ev{};
    ev.events = EPOLLIN;
    ev.data.fd = fd;
    ::epoll_ctl(epoll_fd_, EPOLL_CTL_ADD, fd, &ev);
  }
  if (peer_.slots != kShape.slots || peer_.slot_bytes != kShape.slot_bytes)
    fail(Status(Code::kProtocol, "rdma peer announces " + std::to_string(peer_.slots) +
                                     " slots of " + std::to_string(peer_.slot_bytes) +
                                     " bytes; this side uses " + std::to_string(kShape.slots) +
                                     " of " + std::to_string(kShape.slot_bytes)));
}

RdmaChannel::~RdmaChannel() {
  // Goodbye: tells the peer, in order after every fragment already posted, that this side
  // closes (the last slot of the window is kept for it). Waits briefly so that it leaves
  // before the disconnect flushes the send queue.
  if (!failed() && credits_.reserve_free(*conn_->credit_word()) && sq_room(1)) {
    SendWr w;
    w.opcode = Opcode::kSendImm;
    w.imm = detail::encode_imm(credits_.take(), SlotKind::kGoodbye);
    if (post_chain(&w, 1)) {
      const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(500);
      while (wr_done_ < wr_posted_ && !failed() && std::chrono::steady_clock::now() < deadline) {
        if (!drain_cq()) break;
        if (wr_done_ < wr_posted_) std::this_thread::sleep_for(std::chrono::microseconds(50));
      }
    }
  }
  if (epoll_fd_ >= 0) ::close(epoll_fd_);
  conn_.reset();
}

size_t RdmaChannel::post(const TxFrame* frames, size_t n) {
  if (failed()) return 0;
  const uint64_t room = kQueue - (posted_ - sent_);
  if (n > room) n = room;
  for (size_t i = 0; i < n; ++i) {
    const TxFrame& f = frames[i];
    Slot& slot = queue_[posted_ % kQueue];
    const uint32_t len = tern::toolkit::payload_length(f.hdr);
    if (len != 0 && f.payload == nullptr) {
      fail(Status(Code::kInvalidArgument, "channel " + std::to_string(index_) +
                                              ": frame posted without its payload"));
      return i;
    }
    tern::toolkit::store_frame(slot, f, len);
    slot.length = len;
    slot.page = static_cast<FrameType>(f.hdr.type) == FrameType::kPage;
    ++posted_;
  }
  return n;
}

bool RdmaChannel::post_chain(SendWr* wrs, uint32_t n) {
  if (n == 0) return true;
  for (uint32_t i = 0; i < n; ++i) wrs[i].wr_id = (op_code(wrs[i].opcode) << 56) | (wr_posted_ + i);
  wrs[n - 1].signaled = true;  // selective signalling: one completion per chain
  frames_at_[(wr_posted_ + n - 1) % sq_depth_] = sent_;
  if (int rc = conn_->post_send(wrs, n); rc != 0) {
    fail(errno_status("channel " + std::to_string(index_) + ": ibv_post_send on QP " +
                          std::to_string(conn_->qp_num()),
                      rc));
    return false;
  }
  wr_posted_ += n;
  return true;
}

bool RdmaChannel::flush() {
  if (failed()) return false;
  if (!sq_room(kBurst + 1) && !drain_cq()) return false;
  std::atomic_thread_fence(std::memory_order_acquire);
  const uint64_t peer_consumed = *conn_->credit_word();
  uint64_t credits = credits_.available(peer_consumed);
  import_grants();
  SendWr wrs[kBurst];
  uint32_t n = 0;
  const uint32_t slot_bytes = kShape.slot_bytes;
  Batch batch;
  // Each pass adds at most two work requests: a direct WRITE and the batch's SEND, or the
  // closing SEND and a fragment.
  while (sent_ < posted_ && n + 2 <= kBurst && sq_room(n + 2)) {
    Slot& s = queue_[sent_ % kQueue];
    SendWr write;
    if (!sent_first_ && direct_write(s, &write)) {
      if (batch.count == 0) {
        if (credits == 0) break;
        batch.slot = credits_.take();
        --credits;
      }
      wrs[n++] = write;
      std::memcpy(conn_->tx_area() + uint64_t{batch.slot} * slot_bytes +
                      uint64_t{batch.count} * detail::kHeaderRoom,
                  &s.hdr, detail::kHeaderRoom);
      ++batch.count;
      ++sent_;
      ++placed_sent_;
      if (batch.count == detail::kMaxPlacedBatch) close_batch(batch, wrs, n);
      continue;
    }
    if (batch.count != 0) {  // frames stay in order: the batch leaves before this frame
      close_batch(batch, wrs, n);
      continue;
    }
    if (credits == 0) break;
    const uint32_t slot = credits_.take();
    --credits;
    uint8_t* local = conn_->tx_area() + uint64_t{slot} * slot_bytes;
    const uint64_t remote = peer_.ring_addr + uint64_t{slot} * peer_.slot_bytes;
    const bool first = !sent_first_;
    const uint32_t piece = detail::fragment_bytes(s.length, sent_off_, kPayloadCap);
    const uint8_t* src = s.payload ? s.payload + sent_off_ : nullptr;
    uint32_t lkey = 0;
    const bool zero_copy = s.page && piece > 0 && memory_ && memory_->lookup(src, piece, &lkey);
    if (first) std::memcpy(local, &s.hdr, detail::kHeaderRoom);
    if (!zero_copy && piece > 0) std::memcpy(local + detail::kHeaderRoom, src, piece);

    SendWr& w = wrs[n++];
    w = SendWr{};
    w.imm = detail::encode_imm(slot, first ? SlotKind::kFirst : SlotKind::kContinue);
    const uint64_t l = reinterpret_cast<uint64_t>(local);
    const uint64_t p = reinterpret_cast<uint64_t>(src);
    if (first && zero_copy) {
      w.sge[0] = {l, detail::kHeaderRoom, conn_->tx_lkey()};
      w.sge[1] = {p, piece, lkey};
      w.num_sge = 2;
    } else if (first) {
      w.sge[0] = {l, detail::kHeaderRoom + piece, conn_->tx_lkey()};
      w.num_sge = 1;
    } else {
      w.sge[0] = zero_copy ? Sge{p, piece, lkey}
                           : Sge{l + detail::kHeaderRoom, piece, conn_->tx_lkey()};
      w.num_sge = 1;
    }
    const uint32_t total = (first ? detail::kHeaderRoom : 0) + piece;
    if (first && total <= conn_->max_inline()) {
      w.opcode = Opcode::kSendImm;  // small: lands in the slot's posted receive
      w.inline_data = true;
    } else {
      w.opcode = Opcode::kWriteImm;
      w.remote_addr = remote + (first ? 0 : detail::kHeaderRoom);
      w.rkey = peer_.ring_rkey;
    }
    sent_first_ = true;
    sent_off_ += piece;
    if (sent_off_ >= s.length) {
      ++sent_;
      sent_off_ = 0;
      sent_first_ = false;
    }
  }
  if (batch.count != 0) close_batch(batch, wrs, n);
  return post_chain(wrs, n);
}

size_t RdmaChannel::poll_tx() {
  if (!failed()) drain_cq();
  const size_t n = done_ - tx_seen_;
  tx_seen_ = done_;
  return visible_tx(n);
}

void RdmaChannel::fail_completion(const Completion& c) {
  // A goodbye already received explains any failure that follows it.
  for (uint64_t k = rx_consumed_; k < rx_arrived_; ++k)
    if (detail::imm_kind(rx_imm_[k % kSlots]) == SlotKind::kGoodbye) return fail_peer_closed();
  if (conn_->peer_gone()) return fail_peer_closed();
  fail(Status(Code::kIo, "channel " + std::to_string(index_) + ": work request failed: " +
                             describe(c, conn_->qp_num())));
}

bool RdmaChannel::drain_cq() {
  Completion c[32];
  while (true) {
    const int k = conn_->poll(c, 32);
    if (k < 0) {
      fail(Status(Code::kIo, "channel " + std::to_string(index_) + ": ibv_poll_cq failed"));
      return false;
    }
    for (int i = 0; i < k; ++i) {
      if (!c[i].ok) {
        if (!failed()) fail_completion(c[i]);
        return false;
      }
      if (c[i].recv) {
        const uint32_t slot = static_cast<uint32_t>(c[i].wr_id);
        rx_imm_[slot % kSlots] = c[i].imm;
        rx_len_[slot % kSlots] = c[i].byte_len;
        ++rx_arrived_;
      } else {
        const uint64_t seq = c[i].wr_id & kSeqMask;
        wr_done_ = seq + 1;
        done_ = frames_at_[seq % sq_depth_];
      }
    }
    if (k < 32) return true;
  }
}

void RdmaChannel::return_slots() {
  if (rx_consumed_ > rx_reposted_) {
    const uint32_t n = static_cast<uint32_t>(rx_consumed_ - rx_reposted_);
    if (int rc = conn_->post_recvs(static_cast<uint32_t>(rx_reposted_ % kSlots), n); rc != 0) {
      fail(errno_status("channel " + std::to_string(index_) + ": ibv_post_recv", rc));
      return;
    }
    rx_reposted_ = rx_consumed_;
  }
  // Credits go back in batches of kCreditBatch slots. No deadlock: a sender out of credits
  // has kSlots - 1 > kCreditBatch slots unreturned, so the batch fills once they are consumed.
  if (rx_reposted_ - credit_out_ >= kCreditBatch && sq_room(1)) {
    // The consumed count, RDMA-written into the peer's credit word (inline when possible).
    uint64_t* src = conn_->credit_source();
    *src = rx_reposted_;
    SendWr w;
    w.opcode = Opcode::kWrite;
    w.sge[0] = {reinterpret_cast<uint64_t>(src), sizeof(uint64_t), conn_->credit_lkey()};
    w.num_sge = 1;
    w.inline_data = conn_->max_inline() >= sizeof(uint64_t);
    w.remote_addr = peer_.credit_addr;
    w.rkey = peer_.credit_rkey;
    if (post_chain(&w, 1)) credit_out_ = rx_reposted_;
  }
}

size_t RdmaChannel::poll_rx(RxFrame* out, size_t max) {
  if (failed() || !drain_cq()) return 0;
  size_t n = 0;
  for (int pass = 0; pass < 2 && n == 0 && !failed(); ++pass) {
    if (pass == 1) {
      // Idle: consume the completion event and re-arm, then look once more, so that nothing
      // that arrived before the re-arm waits behind a wait_fd that will not fire. Those are
      // syscalls, so a spinning caller pays them once per kIdleCheck idle polls: skipping is
      // safe because an armed CQ, or an unconsumed event, keeps wait_fd correct (at worst it
      // stays readable for a few more polls).
      if (rx_consumed_ < rx_arrived_) break;
      if (++idle_polls_ % kIdleCheck != 1) break;
      if (!conn_->rearm(false)) fail(Status(Code::kIo, "channel " + std::to_string(index_) +
                                                          ": ibv_req_notify_cq failed"));
      if (failed() || !drain_cq()) break;
      if (rx_consumed_ == rx_arrived_) {
        if (conn_->peer_gone()) fail_peer_closed();
        break;
      }
    }
    while (n < max && rx_consumed_ < rx_arrived_ && !failed()) {
      const uint32_t slot = static_cast<uint32_t>(rx_consumed_ % kSlots);
      const uint32_t imm = rx_imm_[slot];
      const SlotKind kind = detail::imm_kind(imm);
      if (kind == SlotKind::kGoodbye) {
        fail_peer_closed();
        break;
      }
      if (detail::imm_slot(imm) != slot) {
        fail(Status(Code::kProtocol, "channel " + std::to_string(index_) + ": immediate names slot " +
                                         std::to_string(detail::imm_slot(imm)) + ", expected " +
                                         std::to_string(slot)));
        break;
      }
      const uint8_t* base = conn_->rx_ring() + uint64_t{slot} * kShape.slot_bytes;
      if (kind == SlotKind::kPlaced) {
        if (state_ != RxState::kHeader) {
          fail(Status(Code::kProtocol, "channel " + std::to_string(index_) +
                                           ": new frame before the last one's payload ended"));
          break;
        }
        if (!deliver_placed(slot, base, out, n, max)) break;
        continue;
      }
      if (state_ == RxState::kHeader) {
        if (kind != SlotKind::kFirst) {
          fail(Status(Code::kProtocol, "channel " + std::to_string(index_) +
                                           ": continuation fragment without a frame header"));
          break;
        }
        std::memcpy(&cur_, base, sizeof(cur_));
        if (!accept_header(cur_)) break;
        need_ = tern::toolkit::payload_length(cur_);
        got_ = 0;
        if (static_cast<FrameType>(cur_.type) == FrameType::kPage) {
          dst_ = land_page(cur_);
          if (dst_ == nullptr) break;
          maybe_grant(cur_, dst_);
        } else if (need_ != 0) {
          rx_control_.resize(need_);
          dst_ = rx_control_.data();
        } else {
          dst_ = nullptr;
        }
      } else if (kind != SlotKind::kContinue) {
        fail(Status(Code::kProtocol, "channel " + std::to_string(index_) +
                                         ": new frame before the last one's payload ended"));
        break;
      }
      const bool page = static_cast<FrameType>(cur_.type) == FrameType::kPage;
      const uint32_t piece = detail::fragment_bytes(need_, got_, kPayloadCap);
      // Pages are written as the landing says (streamed into guest RAM); control payloads copy.
      if (piece && page)
        landing_->copy_fragment(dst_ + got_, base + detail::kHeaderRoom, piece);
      else if (piece)
        std::memcpy(dst_ + got_, base + detail::kHeaderRoom, piece);
      got_ += piece;
      ++rx_consumed_;
      if (got_ < need_) {
        state_ = RxState::kPayload;
        continue;
      }
      if (page) Landing::end_fragments();  // the streamed stores, before the frame is reported
      state_ = RxState::kHeader;
      out[n].hdr = cur_;
      out[n].data = need_ != 0 ? dst_ : nullptr;
      ++n;
      const bool control_payload =
          need_ != 0 && static_cast<FrameType>(cur_.type) != FrameType::kPage;
      if (control_payload || ends_staged_batch(cur_)) break;
    }
  }
  if (!failed()) return_slots();
  // Frames a flush left queued for want of credits go out as soon as credits are back, even if
  // nobody flushes again: the destination's urgent channel is flushed by the fault poller only
  // when new faults come, while its receiver polls it all the time. Without this, requests
  // queued behind a full window waited for the next fault (or for the bulk channels to happen
  // to bring those pages) while every guest thread could be blocked on one of them.
  if (!failed() && sent_ < posted_) flush();
  return n;
}

}  // namespace tern::rdma
