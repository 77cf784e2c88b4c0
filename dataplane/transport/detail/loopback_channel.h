// Loopback channel datapath: two engines in one process joined by a pair of bounded
// single-producer/single-consumer rings of frame descriptors (one ring per direction).
//
// kPage payloads are borrowed, not copied, at post: the receiver copies each one straight from
// the sender's memory to the address its Landing resolves (one memcpy per page in total), and
// only then does the sender's poll_tx count the frame. Other payloads are copied at post into a
// slot-owned buffer that the receiver takes over by swap.
//
// Wake-ups: the receiver arms `rx_armed` when poll_rx finds the ring empty (it may sleep next);
// the sender writes the receiver's eventfd on flush (or close) only when it takes the armed
// flag (exchange), so a busy stream costs no syscall per post. Both sides use seq_cst on (tail,
// rx_armed) so that one of them always sees the other (no lost wake-up). Every eventfd write
// follows a taken arm, and the receiver, finding its arm taken, owes exactly one read and
// retries it until the write is in: a stale count can never keep the fd readable (a worker
// blocking on it would spin; one at real-time priority would starve the writer it waits on).
//
// Threads: each LoopbackChannel is used by one thread at a time (Channel contract); the two
// ends of a link may be on different threads. Fields of LoopbackPipe say who writes them.
#pragma once

#include <array>
#include <atomic>
#include <cstdint>
#include <memory>
#include <mutex>
#include <utility>
#include <vector>

#include "dataplane/toolkit/raw_channel.h"

namespace tern::detail {

// The transport toolkit pieces this channel is built from (dataplane/toolkit/raw_channel.h).
using toolkit::payload_length;
using toolkit::RawChannel;
using toolkit::store_frame;

// One direction of a link.
struct LoopbackPipe {
  static constexpr uint32_t kSlots = 512;
  struct Slot {
    FrameHeader hdr;
    const uint8_t* payload = nullptr;  // borrowed (kPage) or owned.data()
    std::vector<uint8_t> owned;        // copied payload of non-page frames
  };

  LoopbackPipe() = default;
  ~LoopbackPipe();
  LoopbackPipe(const LoopbackPipe&) = delete;
  LoopbackPipe& operator=(const LoopbackPipe&) = delete;

  // Slot s % kSlots: written by the producer while s >= head (free), read by the consumer while
  // head <= s < tail (published).
  std::array<Slot, kSlots> slots;
  alignas(64) std::atomic<uint64_t> tail{0};  // producer: frames published (flush)
  alignas(64) std::atomic<uint64_t> head{0};  // consumer: frames whose payload was copied
  alignas(64) std::atomic<bool> rx_armed{false};  // consumer may sleep: signal on publish
  std::atomic<bool> producer_closed{false};       // producer end destroyed
  std::atomic<bool> consumer_closed{false};       // consumer end destroyed
  // Held by the consumer (try_lock, never waits) while it reads slots, and by the producer's
  // destructor while it turns borrowed page payloads into owned copies, so that a receiver
  // never reads memory the sending engine freed after closing its channel.
  std::mutex detach_mu;
  int event_fd = -1;  // the consumer's wake-up (owned: closed with the pipe)
};

struct LoopbackLink {
  LoopbackPipe pipes[2];  // pipes[i]: sent by side i, received by side 1-i
};

class LoopbackChannel final : public RawChannel {
 public:
  // `side` 0 or 1 of `link`.
  LoopbackChannel(std::shared_ptr<LoopbackLink> link, int side);
  ~LoopbackChannel() override;

  size_t post(const TxFrame* frames, size_t n) override;
  bool flush() override;
  size_t poll_tx() override;
  size_t poll_rx(RxFrame* out, size_t max) override;
  size_t tx_pending() const override { return posted_ - published_; }
  int wait_fd() const override { return rx_.event_fd; }

 private:
  void arm();            // consumer: may sleep next; the producer signals on publish
  void settle_wakeup();  // consumer: disarm, and read the eventfd if the producer wrote it
  static void signal(LoopbackPipe& p);

  std::shared_ptr<LoopbackLink> link_;
  LoopbackPipe& tx_;
  LoopbackPipe& rx_;
  // Sender side (owner thread only).
  uint64_t posted_ = 0;     // frames written into slots
  uint64_t published_ = 0;  // frames made visible (== tx_.tail)
  uint64_t tx_seen_ = 0;    // consumed frames already reported by poll_tx
  // Receiver side (owner thread only).
  uint64_t consumed_ = 0;
  bool armed_ = false;      // rx_armed was set by us and not yet taken back
  bool owe_read_ = false;   // the producer took our arm: one eventfd read is due
  std::vector<uint8_t> rx_control_;  // payload of the last non-page frame returned
};

// Both ends of a fresh link; fails only if eventfds cannot be created.
Result<std::pair<std::unique_ptr<LoopbackChannel>, std::unique_ptr<LoopbackChannel>>>
make_loopback_pair();

}  // namespace tern::detail
