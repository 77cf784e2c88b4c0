// rdma channel datapath: one RC queue pair (rdma::Connection) per channel, speaking the slot
// protocol of detail/slot_protocol.h.
//
// Send: post() queues frame descriptors in a bounded ring (kPage payloads borrowed, others
// copied); flush() turns as many queued frames into fragments as the peer's credits allow and
// posts them as one chain (one ibv_post_send), signalling only the chain's last work request.
// A page payload inside registered memory (Transport::register_memory) is written straight
// from there; anything else is first copied into the channel's registered tx area. A frame is
// complete (poll_tx) once the signalled completion after its last fragment arrived.
// Receive: completions name filled slots in order; poll_rx copies each fragment's payload to
// where the Landing resolves (checked before a byte is copied), reposts the slots' receives as
// one chain and writes the consumed count into the peer's credit word.
// Direct placement (precopy without postcopy armed, detail/grants.h): when the transport's
// memory is remote-writable (a destination's guest RAM) and the landing is not staged, the
// first page frame of a 64 MiB chunk that arrives through the slots registers the chunk and
// grants it to the sender; later frames inside a grant go as a plain RDMA WRITE to their place,
// announced by one kPlaced notification (a SEND of up to 32 headers) per batch. Each announced
// header is still checked against the Landing and the grants before the frame is reported; the
// payload is never copied. A kPlaced slot while the landing is staged fails the channel.
// (Those members are defined in rdma_channel_direct.cc.)
// wait_fd() is an epoll fd over the CQ's completion channel and the CM event channel, so an
// idle worker also wakes on a disconnect.
//
// Threads: one owner thread at a time (Channel contract). `memory` is shared by the channels of
// one transport (see memory_map.h).
#pragma once

#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/toolkit/raw_channel.h"
#include "rdma/detail/grants.h"
#include "rdma/detail/slot_protocol.h"
#include "rdma/memory_map.h"
#include "rdma/verbs_shim.h"

namespace tern::rdma {

class RdmaChannel final : public tern::toolkit::RawChannel {
 public:
  static constexpr uint32_t kSlots = 128;
  static constexpr uint32_t kPayloadCap = 64u << 10;
  static constexpr RingShape kShape{kSlots, detail::kHeaderRoom + kPayloadCap};

  RdmaChannel(std::unique_ptr<Connection> conn, std::shared_ptr<MemoryMap> memory);
  ~RdmaChannel() override;  // sends the goodbye, waits briefly for it, disconnects
  RdmaChannel(const RdmaChannel&) = delete;
  RdmaChannel& operator=(const RdmaChannel&) = delete;

  size_t post(const TxFrame* frames, size_t n) override;
  bool flush() override;
  size_t poll_tx() override;
  size_t poll_rx(RxFrame* out, size_t max) override;
  size_t tx_pending() const override { return posted_ - sent_; }
  int wait_fd() const override { return epoll_fd_; }

  // Page frames this channel sent / received by direct placement, and chunks it granted.
  uint64_t placed_sent() const { return placed_sent_; }
  uint64_t placed_received() const { return placed_received_; }
  size_t grants_given() const { return my_grants_.size(); }

 private:
  static constexpr uint32_t kQueue = 1024;  // frames queued on the send side
  static constexpr uint32_t kBurst = 64;    // work requests per chain
  static constexpr uint32_t kIdleCheck = 32;   // idle polls per event/disconnect check
  static constexpr uint32_t kCreditBatch = kSlots / 4;

  struct Slot {
    FrameHeader hdr;
    const uint8_t* payload = nullptr;  // borrowed (kPage) or owned.data()
    uint32_t length = 0;
    bool page = false;
    std::vector<uint8_t> owned;
  };
  enum class RxState { kHeader, kPayload };

  // Handles every completion waiting on the CQ: receive slots filled, sends done. False if a
  // completion failed (the channel failed).
  bool drain_cq();
  // Reposts consumed slots' receives and reports the consumed count to the peer.
  void return_slots();
  // Room in the send queue for `n` more work requests.
  bool sq_room(uint32_t n) const { return wr_posted_ - wr_done_ + n <= sq_depth_; }
  bool post_chain(SendWr* wrs, uint32_t n);
  void fail_completion(const Completion& c);
  // Direct placement, sender: imports new grants; builds the WRITE of a frame that lies wholly
  // inside a grant (false: it goes through the slots); closes a kPlaced batch into a SEND.
  struct Batch {
    uint32_t slot = 0, count = 0;
  };
  void import_grants();
  bool direct_write(const Slot& s, SendWr* w);
  void close_batch(Batch& b, SendWr* wrs, uint32_t& n);
  // Direct placement, receiver: whether this side may grant / take placed frames now; grants
  // the chunk holding a frame that landed at dst; reports the headers of a kPlaced slot.
  bool direct_allowed() const;
  void maybe_grant(const FrameHeader& h, uint8_t* dst);
  bool deliver_placed(uint32_t slot, const uint8_t* base, RxFrame* out, size_t& n, size_t max);

  std::unique_ptr<Connection> conn_;
  std::shared_ptr<MemoryMap> memory_;
  int epoll_fd_ = -1;
  uint32_t sq_depth_;
  const RingInfo peer_;
  // Send side (owner thread only).
  std::unique_ptr<Slot[]> queue_;
  uint64_t posted_ = 0;      // frames queued
  uint64_t sent_ = 0;        // frames whose every fragment is posted
  uint32_t sent_off_ = 0;    // payload bytes of frame `sent_` already posted (0: none yet)
  bool sent_first_ = false;  // frame `sent_`'s first fragment is posted
  uint64_t done_ = 0;        // frames completed
  uint64_t tx_seen_ = 0;     // completions already reported
  detail::CreditWindow credits_;
  uint64_t wr_posted_ = 0, wr_done_ = 0;  // work requests
  std::vector<uint64_t> frames_at_;        // [wr % sq_depth]: sent_ after a signalled wr
  uint64_t credit_out_ = 0;                // last consumed count written to the peer
  detail::GrantTable peer_grants_{MemoryMap::kChunk};  // places the peer granted us
  uint32_t grants_in_ = 0;
  uint64_t placed_sent_ = 0;
  // Receive side (owner thread only).
  std::vector<uint32_t> rx_imm_;           // [slot]: immediate of its completion
  std::vector<uint32_t> rx_len_;           // [slot]: bytes its completion reported
  detail::GrantTable my_grants_{MemoryMap::kChunk};  // places this side granted the peer
  uint32_t placed_pos_ = 0;                // headers of the current kPlaced slot reported
  uint64_t placed_received_ = 0;
  uint64_t rx_arrived_ = 0, rx_consumed_ = 0, rx_reposted_ = 0;
  RxState state_ = RxState::kHeader;
  FrameHeader cur_{};
  uint8_t* dst_ = nullptr;
  uint32_t need_ = 0, got_ = 0;
  std::vector<uint8_t> rx_control_;
  uint32_t idle_polls_ = 0;
};

}  // namespace tern::rdma
