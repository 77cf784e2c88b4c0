// One DPDK ethdev port that carries a migration's channels: a memif or other virtual device
// probed from devargs, or one end of an in-process ring pair. Configured with one RX/TX queue
// pair per channel slot and started; closed and removed when the last user lets go (the
// transport and each channel hold a shared_ptr, so channels may outlive their transport).
//
// Threads: created and destroyed on the control path; queue q is used by the thread that owns
// the channel on q only (DPDK queues are not thread-safe, one owner each).
#pragma once

#include <cstdint>
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
  uint16_t take_handed(uint16_t q, rte_mbuf** out, uint16_t n);

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
  std::string name_;  // the process-unique device name
  std::shared_ptr<RingPair> rings_;  // ring pairs: shared by both ends
  std::string memif_server_socket_;  // memif server: the socket it listens on
  std::vector<rte_ring*> handed_;    // per queue, when the port does not steer (see steers())
  std::mutex rx_mu_;                 // the RX queues, when the port does not steer

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
