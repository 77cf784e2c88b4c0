// A tern Channel on one RX/TX queue pair of a DPDK port, with reliable ordered delivery
// (reliable.h) over a link that may lose, reorder, duplicate or corrupt frames.
//
// Transmit: post() keeps the frame (a kPage payload is borrowed, others copied, as on every
// transport); flush()/poll_tx() cut frames into segments of up to kSegmentPayload bytes as the
// window opens, send new segments, resend overdue ones, and answer with acks. A page fragment is
// attached to its segment where it lies (zero_copy, memif: tx_extbuf.h) or copied into a packet
// buffer with its checksum (copy_sum); the fragment is summed only while the peer asks for it
// (ChannelConfig::verify_payload). A frame completes (poll_tx) once every segment of it is
// acknowledged and, zero-copy, no mbuf points into its page any more.
// Receive: poll_rx() takes a burst off the queue, drops segments with a bad checksum or for
// another queue, stores the rest by seq and delivers in order: the first fragment of a frame is
// checked (header, landing) before any byte of it lands; later fragments follow it into the
// landing or staging page. The urgent channel has its own queue pair, so its frames never
// queue behind bulk segments (memif: separate rings; strict priority by construction).
//
// wait_fd(): a timerfd armed when poll_rx finds nothing (fires after idle_us): memif and
// net_ring raise no receive interrupt this transport can wait on, so an idle worker re-polls
// at that period instead of spinning.
//
// Threads: one owner thread at a time (Channel contract); the port is shared, the queue not.
#pragma once

#include <array>
#include <atomic>
#include <mutex>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/toolkit/raw_channel.h"
#include "dpdk/detail/fault_injector.h"
#include "dpdk/detail/reliable.h"

struct rte_mbuf;

namespace tern::dpdk {

class Port;
struct ExtRef;

inline constexpr uint32_t kSegmentPayload = 8192;

struct ChannelConfig {
  uint32_t window = 256;
  uint32_t rto_us = 10000;
  uint32_t idle_us = 200;
  FaultConfig faults;
  // Page fragments are attached to the segments from guest memory (tx_extbuf.h) instead of
  // copied into packet buffers; set for PMDs that copy with the CPU inside tx_burst (memif).
  bool zero_copy = false;
  // This end checks the payload checksum of the data segments it receives, and so asks its
  // peer to compute it (kSegWantSums): off only on shared-memory links (memif, net_ring) with no
  // corruption injected, where nothing can change a segment in flight (as Linux skips the
  // checksums on loopback). Headers are always checked.
  bool verify_payload = true;
};

struct ChannelStats {
  uint64_t segments_sent = 0;
  uint64_t retransmits = 0;
  uint64_t bad_checksum = 0;  // including data segments left unsummed when this end wants sums
  uint64_t payloads_unchecked = 0;  // data segments taken without a payload checksum
  uint64_t duplicates = 0;
  uint64_t injected_drops = 0;
};

class DpdkChannel final : public tern::toolkit::RawChannel {
 public:
  DpdkChannel(std::shared_ptr<Port> port, uint16_t queue, const ChannelConfig& config);
  ~DpdkChannel() override;  // sends a FIN after what was posted; lingers until it is acked

  size_t post(const TxFrame* frames, size_t n) override;
  bool flush() override;
  size_t poll_tx() override;
  size_t poll_rx(RxFrame* out, size_t max) override;
  // Frames not yet sent, plus control frames sent but not yet acknowledged: the control tier
  // waits for tx_pending() == 0 to know a message reached the peer, and keeps flushing (which
  // resends) until then; a lost last reply would otherwise never be resent.
  size_t tx_pending() const override {
    std::lock_guard<std::mutex> lock(mu_);
    return posted_ - sent_frames_;
  }
  int wait_fd() const override { return timer_fd_; }
  bool wakes_on_receive() const override { return false; }  // a poll timer: no rx interrupt

  uint16_t queue() const { return queue_; }
  ChannelStats stats() const;

  // Called by the port's keeper thread (port.h) every few milliseconds: when the owner has not
  // touched the channel for a while, take in acks and peer data, resend overdue segments and
  // answer with acks, so a channel the engine stopped polling (a finished session's control
  // channel, say) still completes its last exchange. Never delivers frames.
  void keep_alive(uint64_t now_us);

 private:
  static constexpr uint32_t kSlots = 512;
  struct Slot {
    FrameHeader hdr;
    const uint8_t* payload = nullptr;
    std::vector<uint8_t> owned;
    uint32_t len = 0;       // payload bytes
    uint32_t built = 0;     // payload bytes already cut into segments
    uint32_t last_seq = 0;  // seq of the frame's last segment (once built)
    ExtRef* ext = nullptr;  // zero-copy: the page's reference, once its first segment is built
    bool ext_released = false;
  };

  // Transmit side.
  void service(uint64_t now);  // build, send, resend, ack
  bool build_segment();        // one more segment of frame built_; false if none can be made
  bool build_ext_segment(Slot& s, uint32_t frag);  // the same, zero-copy
  void transmit_new(uint64_t now);
  void send_batch(rte_mbuf** pkts, uint32_t n, bool keep);  // keep: the window holds them
  void resend(rte_mbuf** pkts, uint32_t n);  // window segments again (zero-copy: re-summed)
  void send_control(uint8_t kind, uint32_t seq);            // ack, probe (not kept)
  void advance_frames();
  // SegHeader flags: ours on every segment (kSegWantSums), plus kSegPayloadSummed on data
  // segments while the peer wants sums.
  uint8_t want_flag() const { return config_.verify_payload ? kSegWantSums : 0; }
  uint8_t data_flags() const {
    return static_cast<uint8_t>(want_flag() | (peer_wants_sums_ ? kSegPayloadSummed : 0));
  }
  // Receive side.
  size_t pump(uint64_t now);   // one rx burst into the windows
  void take_segment(rte_mbuf* m, uint64_t now);
  bool deliver(RxFrame& out, bool& stop);  // next in-order segment; true when a frame completed
  bool fin_at_front() const;
  void arm_timer(uint64_t now);
  void drain_timer(uint64_t now);

  // Held by every public call and by keep_alive: the owner thread is the only regular user,
  // so it is uncontended except when the keeper steps in on an idle channel.
  mutable std::mutex mu_;
  std::atomic<uint64_t> last_touch_us_{0};
  std::shared_ptr<Port> port_;
  const uint16_t port_id_;
  const uint16_t queue_;
  const ChannelConfig config_;

  std::array<Slot, kSlots> slots_;
  uint64_t posted_ = 0;       // frames accepted by post
  uint64_t built_ = 0;        // frames cut into segments completely
  uint64_t sent_frames_ = 0;  // frames whose every segment went out at least once
  uint64_t completed_ = 0;    // frames whose every segment is acknowledged
  uint64_t reported_ = 0;     // completions returned by poll_tx
  TxWindow txw_;
  uint64_t last_scan_us_ = 0;
  uint64_t last_probe_us_ = 0;

  RxWindow rxw_;
  FaultInjector faults_;
  bool need_ack_ = false;
  bool peer_wants_sums_ = true;  // from the flags of the peer's last valid segment
  uint32_t acked_wnd_end_ = 0;  // wnd_end of the last ack sent
  bool peer_fin_ = false;       // a FIN was stored (maybe not yet delivered)
  bool link_seen_up_ = false;
  bool link_down_ = false;      // the peer went away after the link was up
  uint32_t idle_pumps_ = 0;
  // Frame being reassembled.
  bool cur_active_ = false;
  FrameHeader cur_hdr_{};
  uint8_t* cur_dst_ = nullptr;
  uint32_t cur_got_ = 0;
  std::vector<uint8_t> rx_control_;

  int timer_fd_ = -1;
  bool timer_armed_ = false;
  uint64_t timer_due_us_ = 0;
  ChannelStats stats_;
};

}  // namespace tern::dpdk
