#include "dpdk/detail/port.h"

#include <rte_bus.h>
#include <rte_dev.h>
#include <rte_errno.h>
#include <rte_eth_ring.h>
#include <rte_ethdev.h>
#include <rte_mbuf.h>
#include <rte_ring.h>
#include <net/if.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstddef>
#include <cstring>
#include <numeric>
#include <atomic>
#include <chrono>
#include <pthread.h>
#include <map>
#include <mutex>
#include <random>
#include <set>
#include <thread>

#include "dpdk/detail/device_close.h"
#include "dpdk/detail/dpdk_channel.h"
#include "dpdk/detail/eal.h"
#include "dpdk/detail/intr_guard.h"

namespace tern::dpdk {

// The rings joining two in-process ports: a2b[q] carries queue q from the listener to the
// connector, b2a[q] the other way. Found by name through a process-local table (like a
// loopback listener); freed, with any packets still in them, when both ports are gone.
struct RingPair {
  std::string name;
  std::vector<rte_ring*> a2b, b2a;
  ~RingPair() {
    for (auto* v : {&a2b, &b2a})
      for (rte_ring* r : *v) {
        void* m;
        while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
        rte_ring_free(r);
      }
  }
};

namespace {

constexpr uint16_t kRingDescriptors = 1024;

std::string unique_suffix() {
  static std::atomic<uint32_t> n{0};
  return std::to_string(::getpid()) + "_" + std::to_string(n++);
}

// Ring pairs by name, so that a connector finds the listener's (weak: the listener owns it).
std::mutex& rings_mu() {
  static auto* mu = new std::mutex;
  return *mu;
}
std::map<std::string, std::weak_ptr<RingPair>>& ring_table() {
  static auto* t = new std::map<std::string, std::weak_ptr<RingPair>>;
  return *t;
}

Result<std::shared_ptr<RingPair>> make_rings(const std::string& name, uint16_t queues) {
  std::lock_guard<std::mutex> lock(rings_mu());
  auto& t = ring_table();
  if (auto it = t.find(name); it != t.end() && !it->second.expired())
    return Status(Code::kUnavailable, "dpdk net_ring name '" + name + "' is already listened on");
  auto rp = std::make_shared<RingPair>();
  rp->name = name;
  const std::string tag = unique_suffix();
  for (uint16_t q = 0; q < queues; ++q) {
    for (auto* v : {&rp->a2b, &rp->b2a}) {
      std::string rn = "tr" + tag + (v == &rp->a2b ? "a" : "b") + std::to_string(q);
      rte_ring* r = rte_ring_create(rn.c_str(), kRingDescriptors, SOCKET_ID_ANY,
                                    RING_F_SP_ENQ | RING_F_SC_DEQ);
      if (r == nullptr)
        return Status(Code::kUnavailable,
                      "dpdk ring '" + rn + "': " + std::string(rte_strerror(rte_errno)));
      v->push_back(r);
    }
  }
  t[name] = rp;
  return rp;
}

std::shared_ptr<RingPair> find_rings(const std::string& name) {
  std::lock_guard<std::mutex> lock(rings_mu());
  auto it = ring_table().find(name);
  return it == ring_table().end() ? nullptr : it->second.lock();
}

struct MemifPaths {
  std::mutex mu;
  std::set<std::string> used, retired;
};
MemifPaths& memif_paths() {
  static auto* p = new MemifPaths;
  return *p;
}

// A path no memif server of this process has listened on: `path`, else `path`-2, -3, ...
std::string claim_memif_path(const std::string& path) {
  std::lock_guard<std::mutex> lock(memif_paths().mu);
  std::string p = path;
  for (int n = 2; memif_paths().used.count(p); ++n) p = path + "-" + std::to_string(n);
  memif_paths().used.insert(p);
  return p;
}

// A random nonzero memif interface id (memif's ids are 32-bit).
uint32_t fresh_memif_id() {
  std::random_device rd;
  uint32_t id = 0;
  while (id == 0) id = rd();
  return id;
}

}  // namespace

std::string memif_socket_path(const Address& a) {
  for (const auto& [k, v] : a.pmd_args)
    if (k == "socket") return v;
  return "/run/memif.sock";  // the PMD's default
}

bool memif_socket_retired(const std::string& path) {
  std::lock_guard<std::mutex> lock(memif_paths().mu);
  return memif_paths().retired.count(path) != 0;
}

// af_packet: one packet socket per queue, and frames that hold a whole segment. The PMD's
// frame has a 32-byte TPACKET header before the packet; it places frame i at i * framesz, so a
// block (a whole number of pages) must hold a whole number of frames: lcm(framesz, page) =
// 1 MiB + 20 KiB for 8352-byte frames, 128 frames each, 4 blocks for the default 512 frames.
// The interface must carry the largest segment: its MTU is checked here, where the error can
// say what to do (the PMD cannot raise it past its own frame limit).
static Status af_packet_defaults(Address& a) {
  bool qpairs = false, framesz = false, blocksz = false;
  std::string iface;
  for (auto& [k, v] : a.pmd_args) {
    qpairs |= k == "qpairs", framesz |= k == "framesz", blocksz |= k == "blocksz";
    if (k == "iface") iface = v;
  }
  const uint64_t frame = kMaxFrameBytes + 32, page = static_cast<uint64_t>(::getpagesize());
  if (!qpairs) a.pmd_args.emplace_back("qpairs", std::to_string(a.queues));
  if (!framesz) a.pmd_args.emplace_back("framesz", std::to_string(frame));
  if (!blocksz) a.pmd_args.emplace_back("blocksz", std::to_string(std::lcm(frame, page)));
  // The MTU, where it can be read (the PMD reports a missing interface itself).
  if (iface.empty() || iface.size() >= IFNAMSIZ) return Status::ok();
  const int fd = ::socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return Status::ok();
  ifreq req{};
  std::memcpy(req.ifr_name, iface.c_str(), iface.size());
  const bool known = ::ioctl(fd, SIOCGIFMTU, &req) == 0;
  ::close(fd);
  const uint32_t need = kDataHeaderBytes + kSegmentPayload;
  if (known && static_cast<uint32_t>(req.ifr_mtu) < need)
    return Status(Code::kInvalidArgument,
                  "dpdk af_packet: interface " + iface + " has MTU " + std::to_string(req.ifr_mtu) +
                      "; tern's segments need " + std::to_string(need) + " (ip link set " +
                      iface + " mtu 9000)");
  return Status::ok();
}

Result<std::shared_ptr<Port>> Port::open(Address& a, bool listener) {
  if (const Status& s = eal_start(); !s.is_ok()) return s;
  close_parked_ports();
  std::shared_ptr<Port> p(new Port);
  if (a.kind == PortKind::kRingPair) {
    if (listener) {
      auto rp = make_rings(a.ring_name, a.queues);
      if (!rp) return rp.status();
      p->rings_ = std::move(*rp);
    } else {
      p->rings_ = find_rings(a.ring_name);
      if (!p->rings_)
        return Status(Code::kUnavailable, "no dpdk net_ring listener named '" + a.ring_name +
                                              "' in this process (start the destination first)");
      if (p->rings_->a2b.size() != a.queues)
        return Status(Code::kInvalidArgument,
                      "dpdk net_ring '" + a.ring_name + "' has " +
                          std::to_string(p->rings_->a2b.size()) + " queues, not " +
                          std::to_string(a.queues));
    }
    p->name_ = "tern_ring_" + unique_suffix();
    auto& rx = listener ? p->rings_->b2a : p->rings_->a2b;
    auto& tx = listener ? p->rings_->a2b : p->rings_->b2a;
    int id = rte_eth_from_rings(p->name_.c_str(), rx.data(), a.queues, tx.data(), a.queues,
                                SOCKET_ID_ANY);
    if (id < 0)
      return Status(Code::kUnavailable, "dpdk net_ring port: " + std::string(rte_strerror(rte_errno)));
    p->id_ = static_cast<uint16_t>(id);
    p->attached_ = true;
  } else {
    // vdev names select the driver by prefix: keep the user's, made unique in this process.
    std::string prefix = a.device;
    while (!prefix.empty() && std::isdigit(static_cast<unsigned char>(prefix.back()))) prefix.pop_back();
    if (a.kind == PortKind::kMemif && listener) {
      const std::string path = claim_memif_path(memif_socket_path(a));
      bool set = false;
      for (auto& [k, v] : a.pmd_args)
        if (k == "socket") v = path, set = true;
      if (!set) a.pmd_args.emplace_back("socket", path);
      p->memif_server_socket_ = path;
      // A fresh interface id per server, carried to the client in the URI (`id=`): a client
      // process keeps a port of an earlier migration on a socket path until its link goes (or
      // longer: see park_unlinked_client), and memif refuses a second client with the same id
      // on the same path ("Two interfaces with the same id (0) can not have the same role"),
      // which a new destination on that path (a restarted ternd) would otherwise hit.
      bool has_id = false;
      for (const auto& [k, v] : a.pmd_args) has_id |= k == "id";
      if (!has_id) a.pmd_args.emplace_back("id", std::to_string(fresh_memif_id()));
    }
    if (prefix == "net_af_packet") {
      if (Status s = af_packet_defaults(a); !s.is_ok()) return s;
    }
    if (a.kind == PortKind::kMemif) {
      // One memif buffer per segment: with the default 2 KiB buffers a segment spans five
      // chained descriptors, and a ring that fills in the middle of a chain stalls the queue
      // (seen with DPDK 22.11). 128 slots of 8.25 KiB per ring, half a send window: every
      // slot's pages are faulted in once by each process that writes it (shared memory on 4 KiB
      // pages; the destination's acks too), so 512 slots cost about 3,400 more page faults a
      // migration (both sides), and 256 about 900, for no speed measured (issue 12). Both ends
      // must agree.
      bool bsize = false, rsize = false;
      for (auto& [k, v] : a.pmd_args) bsize |= k == "bsize", rsize |= k == "rsize";
      if (!bsize) a.pmd_args.emplace_back("bsize", std::to_string(kMaxFrameBytes + 128));
      if (!rsize) a.pmd_args.emplace_back("rsize", "7");
    }
    const std::string name = prefix + "_t" + unique_suffix();
    const std::string role = a.role.empty() ? (listener ? "server" : "client") : a.role;
    const std::string devargs = a.pmd_devargs(name, role);
    std::string memif_key;
    if (a.kind == PortKind::kMemif && role == "client") {
      memif_key = memif_socket_path(a) + " id=";
      for (const auto& [k, v] : a.pmd_args)
        if (k == "id") memif_key += v;
      if (!close_parked_port_on(memif_key))
        return Status(Code::kUnavailable,
                      "dpdk: an earlier memif client of this process on " + memif_key +
                          " still waits for its server to accept it (server stopped or busy)");
    }
    if (int r = rte_dev_probe(devargs.c_str()); r < 0)
      return Status(Code::kInvalidArgument,
                    "dpdk cannot open device '" + devargs + "': " + rte_strerror(-r));
    if (rte_eth_dev_get_port_by_name(name.c_str(), &p->id_) != 0) {
      rte_eal_hotplug_remove("vdev", name.c_str());
      return Status(Code::kInvalidArgument, "dpdk device '" + devargs + "' is not an ethdev");
    }
    p->name_ = name;
    p->attached_ = true;
    p->has_link_state_ = a.kind == PortKind::kMemif;
    p->memif_key_ = memif_key;
    if (!memif_key.empty()) p->memif_socket_ = memif_socket_path(a);
    if (a.kind != PortKind::kMemif) {
      const std::string tag = unique_suffix();
      for (uint16_t q = 0; q < a.queues; ++q) {
        const std::string rn = "th" + tag + "-" + std::to_string(q);
        rte_ring* r = rte_ring_create(rn.c_str(), kRingDescriptors, SOCKET_ID_ANY,
                                      RING_F_SP_ENQ | RING_F_SC_DEQ);
        if (r == nullptr)
          return Status(Code::kUnavailable,
                        "dpdk ring '" + rn + "': " + std::string(rte_strerror(rte_errno)));
        p->handed_.push_back(r);
      }
    }
  }
  if (!p->handed_.empty()) {
    std::random_device rd;
    while (p->local_ep_ == 0) p->local_ep_ = rd();
    p->listener_ = listener;
    if (listener) a.local_ep = p->local_ep_;  // listen() returns it in the URI (`ep=`)
    else p->peer_ep_ = a.peer_ep;
    // A connector whose address has no `ep=` (typed by hand, not the listener's URI) learns the
    // listener from its first answer, as a listener learns its peer.
    p->learns_peer_ = listener || a.peer_ep == 0;
  }
  if (Status s = p->configure(a.queues); !s.is_ok()) return s;
  if (p->local_ep_ != 0) {
    for (auto& [k, v] : a.pmd_args)
      if (k == "iface") p->iface_ = v;
    std::lock_guard<std::mutex> lock(siblings().mu);
    siblings().ports.push_back(p.get());
  }
  return p;
}

namespace {
// Locally administered unicast MACs: 02:54 then the endpoint id, big-endian.
void put_mac(uint8_t* d, uint32_t ep) {
  d[0] = 0x02, d[1] = 0x54;
  d[2] = ep >> 24, d[3] = ep >> 16, d[4] = ep >> 8, d[5] = ep;
}
bool mac_ep(const uint8_t* d, uint32_t& ep) {
  ep = uint32_t{d[2]} << 24 | uint32_t{d[3]} << 16 | uint32_t{d[4]} << 8 | d[5];
  return d[0] == 0x02 && d[1] == 0x54;
}
}  // namespace

void Port::write_ether(uint8_t* d) const {
  if (local_ep_ == 0) {
    // Steering ports are point to point: the addresses only need to be well formed.
    static const uint8_t kHdr[kEtherHeaderBytes] = {0x02, 0, 0, 0, 0, 0x02, 0x02, 0,
                                                    0,    0, 0, 0x01, kEtherType >> 8,
                                                    kEtherType & 0xff};
    std::memcpy(d, kHdr, sizeof kHdr);
    return;
  }
  put_mac(d, peer_ep());
  put_mac(d + 6, local_ep_);
  d[12] = kEtherType >> 8, d[13] = kEtherType & 0xff;
}

Port::Siblings& Port::siblings() {
  static Siblings* s = new Siblings;  // never destroyed: ports may close during exit
  return *s;
}

bool Port::hand(rte_mbuf* m) {
  const auto* d = rte_pktmbuf_mtod(m, const uint8_t*);
  if (rte_pktmbuf_data_len(m) < kEtherHeaderBytes + sizeof(SegHeader) || !for_us(d)) return false;
  uint32_t to = 0;
  std::memcpy(&to, d + kEtherHeaderBytes + offsetof(SegHeader, queue), sizeof to);
  if (to >= handed_.size() || rte_ring_sp_enqueue(handed_[to], m) != 0)
    rte_pktmbuf_free(m);  // a queue we do not have, or its ring is full: resent later
  return true;
}

// af_packet's PMD joins every packet socket of a process on one interface to one
// PACKET_FANOUT group (its id is the pid xor the interface index), so two ports of one process
// on one interface split the frames between them instead of each seeing all: whichever port's
// socket a frame lands in, it goes to the port it is addressed to. Frames for another endpoint
// (another process's, or a port that is gone) are freed here: never acked, consumed or counted
// by any channel. Called with siblings().mu held.
void Port::hand_group(rte_mbuf* m) {
  for (Port* p : siblings().ports)
    if (p->iface_ == iface_ && p->hand(m)) return;
  rte_pktmbuf_free(m);
}

bool Port::for_us(const uint8_t* d) {
  if (local_ep_ == 0) return true;
  uint32_t dst = 0, src = 0;
  if (!mac_ep(d, dst) || !mac_ep(d + 6, src) || src == 0 || src == local_ep_) return false;
  const uint32_t peer = peer_ep();
  // dst 0: a connector that does not know the listener's id (an address without `ep=`); a
  // listener takes it when it has no peer yet (and learns it) or it is that peer.
  if (dst != local_ep_ && !(dst == 0 && listener_ && (peer == 0 || peer == src))) return false;
  if (peer == src) return true;
  if (peer != 0 || !learns_peer_) return false;  // another endpoint's session
  uint32_t none = 0;  // learn it, unless a sibling's drainer just did
  return peer_ep_.compare_exchange_strong(none, src, std::memory_order_relaxed) || none == src;
}

uint16_t Port::take_handed(uint16_t q, rte_mbuf** out, uint16_t n) {
  if (q >= handed_.size()) return 0;
  // One caller at a time drains every RX queue of every non-steering port of this process on
  // this interface (see hand_group); the others skip to their rings.
  if (std::unique_lock<std::mutex> lock(siblings().mu, std::try_to_lock); lock.owns_lock()) {
    rte_mbuf* burst[32];
    for (Port* p : siblings().ports) {
      if (p->iface_ != iface_) continue;
      for (uint16_t rq = 0; rq < p->queues_; ++rq) {
        const uint16_t got = guarded_rx_burst(p->id_, rq, burst, 32);
        for (uint16_t i = 0; i < got; ++i) hand_group(burst[i]);
      }
    }
  }
  return static_cast<uint16_t>(
      rte_ring_sc_dequeue_burst(handed_[q], reinterpret_cast<void**>(out), n, nullptr));
}

Status Port::configure(uint16_t queues) {
  rte_eth_dev_info info;
  if (int r = rte_eth_dev_info_get(id_, &info); r != 0)
    return Status(Code::kUnavailable, "dpdk port " + name_ + ": " + rte_strerror(-r));
  if (info.max_rx_queues < queues || info.max_tx_queues < queues)
    return Status(Code::kUnavailable,
                  "dpdk port " + name_ + " has " + std::to_string(info.max_rx_queues) +
                      " queue pairs; " + std::to_string(queues) +
                      " asked (queues=N: one per channel)");
  rte_eth_conf conf{};
  if (int r = rte_eth_dev_configure(id_, queues, queues, &conf); r != 0)
    return Status(Code::kUnavailable, "dpdk configure " + name_ + ": " + rte_strerror(-r));
  uint16_t nrx = kRingDescriptors, ntx = kRingDescriptors;
  rte_eth_dev_adjust_nb_rx_tx_desc(id_, &nrx, &ntx);
  for (uint16_t q = 0; q < queues; ++q) {
    if (int r = rte_eth_rx_queue_setup(id_, q, nrx, SOCKET_ID_ANY, nullptr, packet_pool()); r != 0)
      return Status(Code::kUnavailable, "dpdk rx queue " + std::to_string(q) + " of " + name_ +
                                            ": " + rte_strerror(-r));
    if (int r = rte_eth_tx_queue_setup(id_, q, ntx, SOCKET_ID_ANY, nullptr); r != 0)
      return Status(Code::kUnavailable, "dpdk tx queue " + std::to_string(q) + " of " + name_ +
                                            ": " + rte_strerror(-r));
  }
  // Jumbo frames where the port allows them (the largest segment, less its Ethernet header);
  // memif and net_ring carry any size regardless. af_packet's PMD refuses it (its own frame
  // limit), so af_packet_defaults checks the interface's MTU instead.
  (void)rte_eth_dev_set_mtu(id_, kDataHeaderBytes + kSegmentPayload);
  errno = 0;
  if (int r = rte_eth_dev_start(id_); r != 0) {
    // A memif client connects its socket in start, and the PMD returns -1 (EPERM) for any
    // failure: say what failed instead ("Operation not permitted" when the server was killed).
    if (!memif_socket_.empty()) {
      const int e = errno;
      return Status(Code::kUnavailable,
                    "dpdk: cannot connect to the memif server on " + memif_socket_ +
                        (e != 0 ? std::string(" (") + std::strerror(e) + ")" : std::string()) +
                        ": no ternd listens there (stopped, or listening on another socket)");
    }
    return Status(Code::kUnavailable, "dpdk start " + name_ + ": " + rte_strerror(-r));
  }
  started_ = true;
  queues_ = queues;
  return Status::ok();
}

std::string Port::pci_address() const {
  rte_eth_dev_info info{};
  if (rte_eth_dev_info_get(id_, &info) != 0 || info.device == nullptr) return "";
  const rte_bus* bus = rte_dev_bus(info.device);
  if (bus == nullptr || std::strcmp(rte_bus_name(bus), "pci") != 0) return "";
  const char* name = rte_dev_name(info.device);
  return name ? name : "";
}

bool Port::link_up() const {
  if (!has_link_state_) return true;
  rte_eth_link link{};
  if (rte_eth_link_get_nowait(id_, &link) != 0) return false;
  const bool up = link.link_status == RTE_ETH_LINK_UP;
  if (up) linked_once_.store(true, std::memory_order_relaxed);
  return up;
}

void Port::keep(DpdkChannel* ch) {
  std::lock_guard<std::mutex> lock(keep_mu_);
  kept_.push_back(ch);
  if (keeper_.joinable()) return;
  keeper_ = std::thread([this] {
    pthread_setname_np(pthread_self(), "tern-dpdk-keep");
    std::unique_lock<std::mutex> lock(keep_mu_);
    while (!keeper_stop_) {
      keep_cv_.wait_for(lock, std::chrono::milliseconds(2));
      const uint64_t now = now_us();
      for (DpdkChannel* c : kept_) c->keep_alive(now);
    }
  });
}

void Port::unkeep(DpdkChannel* ch) {
  std::lock_guard<std::mutex> lock(keep_mu_);
  kept_.erase(std::remove(kept_.begin(), kept_.end(), ch), kept_.end());
}

Port::~Port() {
  if (local_ep_ != 0) {
    std::lock_guard<std::mutex> lock(siblings().mu);
    auto& v = siblings().ports;
    v.erase(std::remove(v.begin(), v.end(), this), v.end());
  }
  if (keeper_.joinable()) {
    {
      std::lock_guard<std::mutex> lock(keep_mu_);
      keeper_stop_ = true;
    }
    keep_cv_.notify_all();
    keeper_.join();
  }
  if (!memif_server_socket_.empty()) {
    std::lock_guard<std::mutex> lock(memif_paths().mu);
    memif_paths().retired.insert(memif_server_socket_);
  }
  if (attached_) {
    const PortDevice d{id_, rings_ ? std::string() : name_, started_, has_link_state_,
                       memif_socket_, memif_key_};
    // A client whose link was never seen up may still sit in the server's accept queue.
    if (!memif_key_.empty() && !link_up() && !linked_once_.load()) close_or_park_memif_client(d);
    else close_port(d);
  }
  for (rte_ring* r : handed_) {
    void* m;
    while (rte_ring_dequeue(r, &m) == 0) rte_pktmbuf_free(static_cast<rte_mbuf*>(m));
    rte_ring_free(r);
  }
}

}  // namespace tern::dpdk
