// One DPDK ethdev port that carries a migration's channels: a memif or other virtual device
// probed from devargs, or one end of an in-process ring pair. Configured with one RX/TX queue
// pair per channel slot and started; closed and removed when the last user lets go (the
// transport and each channel hold a shared_ptr, so channels may outlive their transport).
//
// Threads: created and destroyed on the control path; queue q is used by the thread that owns
// the channel on q only (DPDK queues are not thread-safe, one owner each).
#pragma once

#include <cstdint>
#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>
#include <string>

#include "dataplane/status.h"
#include "dpdk/detail/address.h"

struct rte_mbuf;
struct rte_ring;

namespace tern::dpdk {

struct RingPair;
class DpdkChannel;

class Port {
 public:
  // Listener side (`listener`: memif server, ring-pair creator) or connector side. A memif
  // server may move to a fresh socket path (see memif_socket_path); `a` says which.
  static Result<std::shared_ptr<Port>> open(Address& a, bool listener);
  ~Port();
  Port(const Port&) = delete;
  Port& operator=(const Port&) = delete;

  uint16_t id() const { return id_; }
  uint16_t queues() const { return queues_; }
  // memif: the peer is connected; other devices: always true once started.
  bool link_up() const;
  const std::string& name() const { return name_; }
  // The PCI address of the port's device ("0000:3b:00.0") when it is on the PCI bus, else ""
  // (memif, net_ring, af_packet: virtual devices).
  std::string pci_address() const;

  // Whether each RX queue receives only the segments sent to it: memif and ring pairs (a ring
  // per queue). Otherwise (af_packet spreads frames over its queues by flow hash, a NIC without
  // flow rules by RSS, and a queue may have no channel) a channel receives with take_handed.
  bool steers() const { return handed_.empty(); }
  // Not steering: drains every RX queue of the port (one caller at a time; others skip) into
  // per-queue rings by the segment's queue field, then returns up to n segments for queue q.
  // Queue q's owner only. Segments for a queue whose ring is full are dropped (resent later).
  // Only frames addressed to this endpoint are handed (see "Endpoint ids" below); others are
  // freed there, unseen by every channel: not acked, not consumed, not counted as loss.
  uint16_t take_handed(uint16_t q, rte_mbuf** out, uint16_t n);

  // Endpoint ids (ports that do not steer; docs/dpdk.md). Several tern endpoints may share one
  // interface (two destinations listening on one veth end), and every packet socket sees every
  // frame on it. Each port picks a random nonzero id when opened; a frame's Ethernet
  // destination carries the id of the endpoint it is for, its source the sender's. A
  // connector knows the listener's id from the URI (`ep=`); a listener learns its peer from
  // the first frame addressed to it, and keeps it until forget_peer(). Steering ports (memif,
  // net_ring) are point to point: ids 0, the fixed addresses, nothing checked.
  uint32_t local_ep() const { return local_ep_; }
  uint32_t peer_ep() const { return peer_ep_.load(std::memory_order_relaxed); }
  // Listener: the next frame addressed to us names the peer (a fresh set of channels).
  void forget_peer() { peer_ep_.store(0, std::memory_order_relaxed); }
  // The 14-byte Ethernet header of a segment from this endpoint to its peer.
  void write_ether(uint8_t* d) const;
  // Whether a received frame is for this endpoint (learning the peer on a listener).
  bool for_us(const uint8_t* d);
  // Queues a received frame on its queue's ring if it is for us (true; freed if that queue's
  // ring is full), else false and the frame untouched.
  bool hand(rte_mbuf* m);
  // To whichever non-steering port of this process on this interface it is for, else freed.
  void hand_group(rte_mbuf* m);

  // Channels on this port for the keeper thread, which calls keep_alive() on each every
  // couple of milliseconds (started with the first channel, joined when the port goes).
  void keep(DpdkChannel* ch);
  void unkeep(DpdkChannel* ch);

 private:
  Port() = default;
  Status configure(uint16_t queues);

  uint16_t id_ = 0;
  uint16_t queues_ = 0;
  bool attached_ = false;  // id_ is ours to close
  bool started_ = false;
  bool has_link_state_ = false;
  std::string memif_socket_;  // memif client: its server's socket
  std::string memif_key_;  // memif client: parked, not closed, if never linked (device_close.h)
  mutable std::atomic<bool> linked_once_{false};  // link_up() has seen the link up
  std::string name_;  // the process-unique device name
  std::shared_ptr<RingPair> rings_;  // ring pairs: shared by both ends
  std::string memif_server_socket_;  // memif server: the socket it listens on
  std::vector<rte_ring*> handed_;    // per queue, when the port does not steer (see steers())
  uint32_t local_ep_ = 0;               // 0: a steering port (no ids)
  bool listener_ = false;
  std::string iface_;  // af_packet's iface= (siblings: ports of this process on it)
  struct Siblings {
    std::mutex mu;             // also: one drainer at a time of the ports' RX queues
    std::vector<Port*> ports;  // every non-steering port of the process
  };
  static Siblings& siblings();
  bool learns_peer_ = false;            // peer_ep_ from the first frame for us (see for_us)
  std::atomic<uint32_t> peer_ep_{0};    // 0: not yet known (frames to it go nowhere)

  std::mutex keep_mu_;
  std::condition_variable keep_cv_;
  std::vector<DpdkChannel*> kept_;  // guarded by keep_mu_
  bool keeper_stop_ = false;        // guarded by keep_mu_
  std::thread keeper_;
};

// The memif socket of an address ("socket=", or the PMD's default).
std::string memif_socket_path(const Address& a);
// True when a memif server of this process listened on `path` and is gone. DPDK 22.11's memif
// keeps a removed server's listening socket open with a freed interrupt handle, so a client
// that connects there spins the EAL interrupt thread; such paths are refused, and a new server
// in this process listens on a fresh path instead (listen() returns it in the URI).
bool memif_socket_retired(const std::string& path);

}  // namespace tern::dpdk
