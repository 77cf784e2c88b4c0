#include "dataplane/transport/detail/loopback_channel.h"

#include <sys/eventfd.h>
#include <unistd.h>

#include <cstring>

namespace tern::detail {

LoopbackPipe::~LoopbackPipe() {
  if (event_fd >= 0) ::close(event_fd);
}

LoopbackChannel::LoopbackChannel(std::shared_ptr<LoopbackLink> link, int side)
    : link_(std::move(link)), tx_(link_->pipes[side]), rx_(link_->pipes[1 - side]) {}

LoopbackChannel::~LoopbackChannel() {
  {
    // Frames still in the ring stay deliverable (like bytes already written to a socket), but
    // their page payloads belong to an engine that may free them now: copy them first.
    std::lock_guard<std::mutex> lock(tx_.detach_mu);
    for (uint64_t s = tx_.head.load(std::memory_order_acquire); s < published_; ++s) {
      auto& slot = tx_.slots[s % LoopbackPipe::kSlots];
      if (slot.payload != nullptr && slot.payload != slot.owned.data()) {
        slot.owned.assign(slot.payload, slot.payload + payload_length(slot.hdr));
        slot.payload = slot.owned.data();
      }
    }
    tx_.producer_closed.store(true, std::memory_order_seq_cst);
  }
  // A sleeping peer must notice the close; one that is awake sees producer_closed.
  if (tx_.rx_armed.exchange(false, std::memory_order_seq_cst)) signal(tx_);
  rx_.consumer_closed.store(true, std::memory_order_release);
}

void LoopbackChannel::signal(LoopbackPipe& p) {
  const uint64_t one = 1;
  ssize_t r = ::write(p.event_fd, &one, sizeof(one));
  (void)r;  // EAGAIN only when the counter is saturated: the peer is awake anyway
}

size_t LoopbackChannel::post(const TxFrame* frames, size_t n) {
  if (failed()) return 0;
  const uint64_t room = LoopbackPipe::kSlots - (posted_ - tx_.head.load(std::memory_order_acquire));
  if (n > room) n = room;
  for (size_t i = 0; i < n; ++i) {
    const TxFrame& f = frames[i];
    auto& slot = tx_.slots[posted_ % LoopbackPipe::kSlots];
    const uint32_t len = payload_length(f.hdr);
    if (len != 0 && f.payload == nullptr) {
      fail(Status(Code::kInvalidArgument, "channel " + std::to_string(index_) +
                                              ": frame posted without its payload"));
      return i;
    }
    store_frame(slot, f, len);  // a page is borrowed until the consumer copied it
    ++posted_;
  }
  return n;
}

bool LoopbackChannel::flush() {
  if (failed()) return false;
  if (tx_.consumer_closed.load(std::memory_order_acquire)) {
    fail_peer_closed();
    return false;
  }
  if (posted_ != published_) {
    tx_.tail.store(posted_, std::memory_order_seq_cst);
    published_ = posted_;
    if (tx_.rx_armed.load(std::memory_order_seq_cst) &&
        tx_.rx_armed.exchange(false, std::memory_order_seq_cst))
      signal(tx_);
  }
  return true;
}

size_t LoopbackChannel::poll_tx() {
  const uint64_t head = tx_.head.load(std::memory_order_acquire);
  const size_t done = head - tx_seen_;
  tx_seen_ = head;
  return visible_tx(done);
}

void LoopbackChannel::settle_wakeup() {
  if (armed_) {
    armed_ = false;
    // The producer took the arm: its eventfd write is in, or on its way.
    if (!rx_.rx_armed.exchange(false, std::memory_order_seq_cst)) owe_read_ = true;
  }
  if (owe_read_) {
    uint64_t v;
    // Not written yet (the producer is between taking the arm and writing): read next poll.
    if (::read(rx_.event_fd, &v, sizeof(v)) == static_cast<ssize_t>(sizeof(v))) owe_read_ = false;
  }
}

void LoopbackChannel::arm() {
  rx_.rx_armed.store(true, std::memory_order_seq_cst);
  armed_ = true;
}

size_t LoopbackChannel::poll_rx(RxFrame* out, size_t max) {
  if (failed() || max == 0) return 0;
  settle_wakeup();
  std::unique_lock<std::mutex> lock(rx_.detach_mu, std::try_to_lock);
  if (!lock.owns_lock()) {
    arm();  // the peer is closing: it signals when done
    return 0;
  }
  uint64_t tail = rx_.tail.load(std::memory_order_acquire);
  if (tail == consumed_) {
    arm();
    tail = rx_.tail.load(std::memory_order_seq_cst);
    if (tail == consumed_) {
      // The producer publishes before it closes, so a close seen here has nothing behind it.
      if (rx_.producer_closed.load(std::memory_order_seq_cst) &&
          rx_.tail.load(std::memory_order_acquire) == consumed_)
        fail_peer_closed();
      return 0;
    }
    settle_wakeup();
  }
  size_t n = 0;
  while (n < max && consumed_ < tail) {
    auto& slot = rx_.slots[consumed_ % LoopbackPipe::kSlots];
    if (!accept_header(slot.hdr)) break;
    RxFrame& f = out[n];
    f.hdr = slot.hdr;
    f.data = nullptr;
    const uint32_t len = payload_length(slot.hdr);
    bool stop = ends_staged_batch(slot.hdr);
    if (static_cast<FrameType>(slot.hdr.type) == FrameType::kPage) {
      uint8_t* dst = land_page(slot.hdr);
      if (dst == nullptr) break;
      landing_->copy(dst, slot.payload, len);  // land_page found a landing
      f.data = dst;
    } else if (len != 0) {
      rx_control_.swap(slot.owned);  // valid until the next poll_rx, which returns after it
      f.data = rx_control_.data();
      stop = true;
    }
    ++consumed_;
    ++n;
    if (stop) break;
  }
  rx_.head.store(consumed_, std::memory_order_release);
  return n;
}

Result<std::pair<std::unique_ptr<LoopbackChannel>, std::unique_ptr<LoopbackChannel>>>
make_loopback_pair() {
  auto link = std::make_shared<LoopbackLink>();
  for (auto& p : link->pipes) {
    p.event_fd = ::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (p.event_fd < 0) return errno_status("eventfd for a loopback channel");
  }
  auto a = std::make_unique<LoopbackChannel>(link, 0);
  auto b = std::make_unique<LoopbackChannel>(link, 1);
  return std::make_pair(std::move(a), std::move(b));
}

}  // namespace tern::detail
