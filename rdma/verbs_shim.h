// The one place in tern that calls libibverbs (ibv_*) and librdmacm (rdma_*). Everything else
// in rdma/ sees only the small value types below, so the channel logic reads as plain C++ and
// the slot/credit logic can be unit-tested without a device.
//
// A Connection is one RC queue pair set up by librdmacm (which also walks the QP through
// INIT -> RTR -> RTS), with its own CQ, completion channel and CM event channel, and the
// registered buffers of tern's slot protocol (rdma_channel.h):
//   rx ring    slots * slot_bytes, remote-writable: the peer writes frames here
//   tx area    slots * slot_bytes, local: headers and bounce copies for outgoing frames
//   control    remote-writable: the credit word (the peer writes how many of our slots it
//              consumed) and the grant table of detail/grants.h (the peer grants us places)
// The buffers' addresses and keys travel in the CM private data (RingInfo) both ways.
//
// Threads: a Connection is used by one thread at a time (its channel's owner). A Listener is
// used by one thread (the transport's acceptor). ProtectionDomain::register_region may be
// called from any thread (ibv_reg_mr is thread-safe).
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/status.h"
#include "rdma/detail/grants.h"

struct ibv_context;
struct ibv_pd;
struct ibv_mr;
struct ibv_cq;
struct ibv_comp_channel;
struct ibv_qp;
struct rdma_cm_id;
struct rdma_event_channel;

namespace tern::rdma {

inline constexpr uint32_t kRingMagic = 0x7e4e5244;  // "tern RD"

// What one side announces to the other in the CM private data (40 bytes; REQ allows 56).
struct RingInfo {
  uint64_t ring_addr = 0;
  uint64_t credit_addr = 0;
  uint32_t ring_rkey = 0;
  uint32_t credit_rkey = 0;
  uint32_t slots = 0;
  uint32_t slot_bytes = 0;
  uint32_t magic = kRingMagic;
  uint32_t features = 0;  // detail::kFeature* bits (0 from a peer that predates them)
};

struct RingShape {
  uint32_t slots = 0;
  uint32_t slot_bytes = 0;
};

// One registered memory region.
struct Region {
  uint8_t* addr = nullptr;
  size_t len = 0;
  uint32_t lkey = 0;
  uint32_t rkey = 0;
  ibv_mr* mr = nullptr;
};

// A protection domain on one device, shared by the connections on that device and the memory
// registered for them.
class ProtectionDomain {
 public:
  ProtectionDomain(ibv_context* ctx, ibv_pd* pd) : ctx_(ctx), pd_(pd) {}
  ~ProtectionDomain();
  ProtectionDomain(const ProtectionDomain&) = delete;
  ProtectionDomain& operator=(const ProtectionDomain&) = delete;

  // Local read/write; plus remote write when `remote_write`.
  Result<Region> register_region(void* addr, size_t len, bool remote_write);
  static void deregister(Region& r);
  ibv_context* context() const { return ctx_; }
  ibv_pd* pd() const { return pd_; }
  std::string device_name() const;

 private:
  ibv_context* ctx_;
  ibv_pd* pd_;
};

// PDs by device, created on first use (one per device for the life of the transport).
class DeviceTable {
 public:
  Result<std::shared_ptr<ProtectionDomain>> pd_for(ibv_context* ctx);
  // The first device's PD (the one connections use when there is one device), or an error.
  Result<std::shared_ptr<ProtectionDomain>> first();

 private:
  std::vector<std::shared_ptr<ProtectionDomain>> pds_;
};

enum class Opcode : uint8_t { kWriteImm, kSendImm, kWrite };

struct Sge {
  uint64_t addr = 0;
  uint32_t length = 0;
  uint32_t lkey = 0;
};

// A send work request in tern's terms; post_send chains a burst of them.
struct SendWr {
  uint64_t wr_id = 0;
  Opcode opcode = Opcode::kSendImm;
  bool signaled = false;
  bool inline_data = false;
  uint32_t imm = 0;  // host order
  uint64_t remote_addr = 0;
  uint32_t rkey = 0;
  uint32_t num_sge = 0;
  Sge sge[2];
};

struct Completion {
  uint64_t wr_id = 0;
  bool ok = true;
  bool recv = false;
  uint32_t imm = 0;       // host order (receive completions with immediate)
  uint32_t byte_len = 0;  // bytes received (receive completions)
  int status = 0;         // ibv_wc_status
  int opcode = 0;         // ibv_wc_opcode
};

// "QP 0x11 opcode RDMA_WRITE status remote access error (10)": for error messages.
std::string describe(const Completion& c, uint32_t qp_num);

class Connection {
 public:
  ~Connection();  // disconnects, then frees QP, CQ, buffers, ids
  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;

  // One ibv_post_send for the whole chain. 0, or the errno of the failure.
  int post_send(const SendWr* wrs, size_t n);
  // Posts receives for slots [first, first + n) (mod slots) as one chain; wr_id = slot.
  int post_recvs(uint32_t first, uint32_t n);
  // Up to max completions; -1 if polling failed.
  int poll(Completion* out, int max);
  // Drains the completion channel without blocking and re-arms the CQ when an event was
  // consumed (or when `force`). Returns false if arming failed.
  bool rearm(bool force);
  // True once the CM reported a disconnect (or error) for this connection. Non-blocking.
  bool peer_gone();

  int cq_fd() const;
  int cm_fd() const;
  uint32_t qp_num() const;
  uint32_t max_inline() const { return max_inline_; }
  uint32_t sq_depth() const { return sq_depth_; }
  const RingInfo& peer() const { return peer_; }
  // Tests: play a peer that announced another ring (e.g. a wrong rkey, to get a real error
  // completion). Only before the channel is built on this connection.
  void override_peer(const RingInfo& peer) { peer_ = peer; }
  const RingShape& shape() const { return shape_; }
  uint8_t* rx_ring() const { return rx_.addr; }
  uint8_t* tx_area() const { return tx_.addr; }
  uint32_t tx_lkey() const { return tx_.lkey; }
  // The peer writes its consumed-slot count here.
  volatile uint64_t* credit_word() const { return reinterpret_cast<volatile uint64_t*>(credit_.addr); }
  // Registered source of the count this side writes to the peer (right after credit_word).
  uint64_t* credit_source() const { return reinterpret_cast<uint64_t*>(credit_.addr + 8); }
  uint32_t credit_lkey() const { return credit_.lkey; }
  // Grants the peer wrote to us, and this side's grant entries (registered with credit_lkey()).
  const volatile detail::GrantEntry* grant_table() const {
    return reinterpret_cast<const volatile detail::GrantEntry*>(credit_.addr + detail::kGrantTableOffset);
  }
  detail::GrantEntry* grant_source() const {
    return reinterpret_cast<detail::GrantEntry*>(credit_.addr + detail::kGrantSourceOffset);
  }
  ProtectionDomain& pd() const { return *pd_; }

 private:
  friend class Listener;
  friend Result<std::unique_ptr<Connection>> connect(const std::string&, const std::string&,
                                                     RingShape, DeviceTable&,
                                                     std::chrono::milliseconds,
                                                     const std::string&);
  Connection() = default;
  Status setup(rdma_cm_id* id, RingShape shape, DeviceTable& devices);
  RingInfo local_info() const;
  Status own_events();  // moves the id to its own CM event channel

  rdma_cm_id* id_ = nullptr;
  rdma_event_channel* events_ = nullptr;  // own channel, once established
  ibv_comp_channel* comp_ = nullptr;
  ibv_cq* cq_ = nullptr;
  bool qp_created_ = false;
  bool gone_ = false;
  uint32_t max_inline_ = 0;
  uint32_t sq_depth_ = 0;
  std::shared_ptr<ProtectionDomain> pd_;
  std::unique_ptr<uint8_t[], void (*)(void*)> mem_{nullptr, nullptr};
  Region rx_, tx_, credit_;
  RingShape shape_;
  RingInfo peer_;
};

// Source side: resolves `host:port`, sets up the QP and buffers, connects (within `timeout`).
// A non-empty `source_ip` (an address of the chosen device) binds the connection to that
// device; empty leaves the choice to librdmacm's routing.
Result<std::unique_ptr<Connection>> connect(const std::string& host, const std::string& port,
                                            RingShape shape, DeviceTable& devices,
                                            std::chrono::milliseconds timeout,
                                            const std::string& source_ip = "");

// Destination side: a listening CM id. Connection requests are accepted with a QP and buffers
// of `shape`; established connections are handed out by poll().
class Listener {
 public:
  static Result<std::unique_ptr<Listener>> listen(const std::string& host,
                                                  const std::string& port, RingShape shape);
  ~Listener();
  uint16_t port() const;
  // The device the bound address belongs to ("" when bound to a wildcard address).
  std::string device_name() const;
  // Handles CM events for up to `timeout_ms`; appends established connections to `out`.
  // An error here is the listener's; a failing request is dropped (the peer sees a reject).
  Status poll(int timeout_ms, DeviceTable& devices, std::vector<std::unique_ptr<Connection>>& out);

 private:
  Listener() = default;
  rdma_event_channel* events_ = nullptr;
  rdma_cm_id* id_ = nullptr;
  RingShape shape_;
  std::vector<std::unique_ptr<Connection>> pending_;  // accepted, not yet established
};

// True if libibverbs sees at least one device; `why` says what was found or missing.
bool any_device(std::string* why);

// An RDMA device as libibverbs lists it, with the IPv4 addresses its GID table holds (RoCE:
// the addresses of its netdev), in the order libibverbs lists the devices.
struct DeviceInfo {
  std::string name;
  std::vector<std::string> ipv4;
};
std::vector<DeviceInfo> list_devices();

}  // namespace tern::rdma
