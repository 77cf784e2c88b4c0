#include "rdma/verbs_shim.h"

#include <arpa/inet.h>
#include <fcntl.h>
#include <infiniband/verbs.h>
#include <netdb.h>
#include <poll.h>
#include <rdma/rdma_cma.h>

#include <algorithm>
#include <cstdlib>
#include <cstring>

namespace tern::rdma {
namespace {

using Clock = std::chrono::steady_clock;

void set_nonblocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() <= 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1000000));
}

Status cm_error(const std::string& what) { return errno_status("rdma: " + what); }

// Waits for the next CM event on `ch` (non-blocking fd) until `deadline`; nullptr on timeout.
rdma_cm_event* next_event(rdma_event_channel* ch, Clock::time_point deadline) {
  while (true) {
    rdma_cm_event* ev = nullptr;
    if (rdma_get_cm_event(ch, &ev) == 0) return ev;
    if (errno != EAGAIN && errno != EINTR) return nullptr;
    const int ms = remaining_ms(deadline);
    if (ms == 0) return nullptr;
    pollfd pfd{ch->fd, POLLIN, 0};
    ::poll(&pfd, 1, ms);
  }
}

Result<addrinfo*> resolve(const std::string& host, const std::string& port, bool passive) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.empty() ? nullptr : host.c_str(), port.c_str(), &hints, &res);
      rc != 0)
    return Status(Code::kInvalidArgument,
                  "rdma host '" + host + "' does not resolve: " + ::gai_strerror(rc));
  return res;
}

const char* op_name(uint64_t wr_id) {
  switch (wr_id >> 56) {
    case 1: return "RDMA_WRITE_WITH_IMM";
    case 2: return "SEND_WITH_IMM";
    case 3: return "RDMA_WRITE";
    default: return "RECV";
  }
}

}  // namespace

std::string describe(const Completion& c, uint32_t qp_num) {
  char qp[16];
  std::snprintf(qp, sizeof(qp), "0x%x", qp_num);
  return std::string("QP ") + qp + " opcode " + op_name(c.recv ? 0 : c.wr_id) + " status " +
         ibv_wc_status_str(static_cast<ibv_wc_status>(c.status)) + " (" +
         std::to_string(c.status) + ")";
}

// ---- ProtectionDomain / DeviceTable -------------------------------------------------------

ProtectionDomain::~ProtectionDomain() {
  if (pd_) ibv_dealloc_pd(pd_);
}

Result<Region> ProtectionDomain::register_region(void* addr, size_t len, bool remote_write) {
  int access = IBV_ACCESS_LOCAL_WRITE | (remote_write ? IBV_ACCESS_REMOTE_WRITE : 0);
  ibv_mr* mr = ibv_reg_mr(pd_, addr, len, access);
  if (!mr)
    return errno_status("rdma: ibv_reg_mr of " + std::to_string(len) + " bytes on " +
                        device_name());
  return Region{static_cast<uint8_t*>(addr), len, mr->lkey, mr->rkey, mr};
}

void ProtectionDomain::deregister(Region& r) {
  if (r.mr) ibv_dereg_mr(r.mr);
  r = Region{};
}

std::string ProtectionDomain::device_name() const {
  return ctx_ ? ibv_get_device_name(ctx_->device) : "?";
}

Result<std::shared_ptr<ProtectionDomain>> DeviceTable::pd_for(ibv_context* ctx) {
  for (auto& p : pds_)
    if (p->context() == ctx) return p;
  ibv_pd* pd = ibv_alloc_pd(ctx);
  if (!pd) return errno_status("rdma: ibv_alloc_pd");
  pds_.push_back(std::make_shared<ProtectionDomain>(ctx, pd));
  return pds_.back();
}

Result<std::shared_ptr<ProtectionDomain>> DeviceTable::first() {
  if (pds_.empty())
    return Status(Code::kInvalidArgument, "rdma: memory registered before any connection");
  return pds_.front();
}

bool any_device(std::string* why) {
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list) {
    if (why) *why = std::string("ibv_get_device_list failed: ") + std::strerror(errno);
    return false;
  }
  if (why) *why = n > 0 ? std::string("device ") + ibv_get_device_name(list[0])
                        : "no RDMA device (ibv_get_device_list found none)";
  ibv_free_device_list(list);
  return n > 0;
}

std::vector<DeviceInfo> list_devices() {
  std::vector<DeviceInfo> out;
  int n = 0;
  ibv_device** list = ibv_get_device_list(&n);
  if (!list) return out;
  for (int i = 0; i < n; ++i) {
    DeviceInfo d;
    d.name = ibv_get_device_name(list[i]);
    if (ibv_context* ctx = ibv_open_device(list[i])) {
      ibv_device_attr attr{};
      const int ports = ibv_query_device(ctx, &attr) == 0 ? attr.phys_port_cnt : 0;
      for (int p = 1; p <= ports; ++p) {
        ibv_port_attr pa{};
        if (ibv_query_port(ctx, static_cast<uint8_t>(p), &pa) != 0) continue;
        for (int g = 0; g < pa.gid_tbl_len; ++g) {
          ibv_gid gid{};
          if (ibv_query_gid(ctx, static_cast<uint8_t>(p), g, &gid) != 0) continue;
          const uint8_t* r = gid.raw;
          // IPv4-mapped (::ffff:a.b.c.d): the RoCE v1/v2 GIDs of the netdev's IPv4 addresses.
          bool mapped = r[10] == 0xff && r[11] == 0xff;
          for (int b = 0; b < 10 && mapped; ++b) mapped = r[b] == 0;
          if (!mapped) continue;
          char ip[INET_ADDRSTRLEN];
          if (!inet_ntop(AF_INET, r + 12, ip, sizeof(ip))) continue;
          if (std::find(d.ipv4.begin(), d.ipv4.end(), ip) == d.ipv4.end()) d.ipv4.push_back(ip);
        }
      }
      ibv_close_device(ctx);
    }
    out.push_back(std::move(d));
  }
  ibv_free_device_list(list);
  return out;
}

// ---- Connection ---------------------------------------------------------------------------

Connection::~Connection() {
  if (id_ && qp_created_) rdma_disconnect(id_);
  if (qp_created_) rdma_destroy_qp(id_);
  ProtectionDomain::deregister(rx_);
  ProtectionDomain::deregister(tx_);
  ProtectionDomain::deregister(credit_);
  if (cq_) ibv_destroy_cq(cq_);
  if (comp_) ibv_destroy_comp_channel(comp_);
  if (id_) rdma_destroy_id(id_);
  if (events_) rdma_destroy_event_channel(events_);
}

Status Connection::setup(rdma_cm_id* id, RingShape shape, DeviceTable& devices) {
  id_ = id;
  shape_ = shape;
  auto pd = devices.pd_for(id->verbs);
  if (!pd) return pd.status();
  pd_ = *pd;
  sq_depth_ = 2 * shape.slots + 64;
  comp_ = ibv_create_comp_channel(id->verbs);
  if (!comp_) return cm_error("ibv_create_comp_channel");
  set_nonblocking(comp_->fd);
  cq_ = ibv_create_cq(id->verbs, static_cast<int>(sq_depth_ + shape.slots + 16), nullptr, comp_, 0);
  if (!cq_) return cm_error("ibv_create_cq");
  if (ibv_req_notify_cq(cq_, 0) != 0) return cm_error("ibv_req_notify_cq");
  ibv_qp_init_attr attr{};
  attr.send_cq = attr.recv_cq = cq_;
  attr.qp_type = IBV_QPT_RC;
  attr.cap.max_send_wr = sq_depth_;
  attr.cap.max_recv_wr = shape.slots;
  attr.cap.max_send_sge = 2;
  attr.cap.max_recv_sge = 1;
  attr.cap.max_inline_data = 128;
  if (rdma_create_qp(id, pd_->pd(), &attr) != 0) {
    attr.cap.max_inline_data = 0;  // a device without inline sends
    if (rdma_create_qp(id, pd_->pd(), &attr) != 0) return cm_error("rdma_create_qp");
  }
  qp_created_ = true;
  max_inline_ = attr.cap.max_inline_data;
  const size_t ring = size_t{shape.slots} * shape.slot_bytes;
  void* mem = nullptr;
  if (::posix_memalign(&mem, 4096, 2 * ring + detail::kControlBytes) != 0)
    return Status(Code::kInternal, "rdma: cannot allocate slot rings");
  // Only the control region (credit words, grant tables) must start at zero; the rings are
  // written before they are read, and zeroing 2 x 8 MiB per connection was a visible part of
  // connecting under an emulated CPU.
  std::memset(static_cast<uint8_t*>(mem) + 2 * ring, 0, detail::kControlBytes);
  mem_ = {static_cast<uint8_t*>(mem), std::free};
  auto rx = pd_->register_region(mem_.get(), ring, true);
  if (!rx) return rx.status();
  rx_ = *rx;
  auto tx = pd_->register_region(mem_.get() + ring, ring, false);
  if (!tx) return tx.status();
  tx_ = *tx;
  auto cr = pd_->register_region(mem_.get() + 2 * ring, detail::kControlBytes, true);
  if (!cr) return cr.status();
  credit_ = *cr;
  if (post_recvs(0, shape.slots) != 0) return cm_error("ibv_post_recv");
  return Status::ok();
}

RingInfo Connection::local_info() const {
  RingInfo i;
  i.ring_addr = reinterpret_cast<uint64_t>(rx_.addr);
  i.ring_rkey = rx_.rkey;
  i.credit_addr = reinterpret_cast<uint64_t>(credit_.addr);
  i.credit_rkey = credit_.rkey;
  i.slots = shape_.slots;
  i.slot_bytes = shape_.slot_bytes;
  i.features = detail::kFeatureGrants;
  return i;
}

Status Connection::own_events() {
  events_ = rdma_create_event_channel();
  if (!events_) return cm_error("rdma_create_event_channel");
  set_nonblocking(events_->fd);
  if (rdma_migrate_id(id_, events_) != 0) return cm_error("rdma_migrate_id");
  return Status::ok();
}

int Connection::post_send(const SendWr* wrs, size_t n) {
  constexpr size_t kChain = 64;
  ibv_send_wr wr[kChain];
  ibv_sge sge[kChain][2];
  while (n > 0) {
    const size_t k = std::min(n, kChain);
    for (size_t i = 0; i < k; ++i) {
      const SendWr& w = wrs[i];
      std::memset(&wr[i], 0, sizeof(wr[i]));
      wr[i].wr_id = w.wr_id;
      wr[i].next = i + 1 < k ? &wr[i + 1] : nullptr;
      wr[i].sg_list = sge[i];
      wr[i].num_sge = static_cast<int>(w.num_sge);
      for (uint32_t s = 0; s < w.num_sge; ++s)
        sge[i][s] = {w.sge[s].addr, w.sge[s].length, w.sge[s].lkey};
      wr[i].send_flags = (w.signaled ? IBV_SEND_SIGNALED : 0) | (w.inline_data ? IBV_SEND_INLINE : 0);
      wr[i].imm_data = htonl(w.imm);
      wr[i].wr.rdma.remote_addr = w.remote_addr;
      wr[i].wr.rdma.rkey = w.rkey;
      wr[i].opcode = w.opcode == Opcode::kWriteImm ? IBV_WR_RDMA_WRITE_WITH_IMM
                     : w.opcode == Opcode::kSendImm ? IBV_WR_SEND_WITH_IMM
                                                    : IBV_WR_RDMA_WRITE;
    }
    ibv_send_wr* bad = nullptr;
    if (int rc = ibv_post_send(id_->qp, wr, &bad); rc != 0) return rc;
    wrs += k;
    n -= k;
  }
  return 0;
}

int Connection::post_recvs(uint32_t first, uint32_t n) {
  constexpr uint32_t kChain = 64;
  ibv_recv_wr wr[kChain];
  ibv_sge sge[kChain];
  while (n > 0) {
    const uint32_t k = std::min(n, kChain);
    for (uint32_t i = 0; i < k; ++i) {
      const uint32_t slot = (first + i) % shape_.slots;
      sge[i] = {reinterpret_cast<uint64_t>(rx_.addr) + uint64_t{slot} * shape_.slot_bytes,
                shape_.slot_bytes, rx_.lkey};
      wr[i] = {};
      wr[i].wr_id = slot;
      wr[i].sg_list = &sge[i];
      wr[i].num_sge = 1;
      wr[i].next = i + 1 < k ? &wr[i + 1] : nullptr;
    }
    ibv_recv_wr* bad = nullptr;
    if (int rc = ibv_post_recv(id_->qp, wr, &bad); rc != 0) return rc;
    first += k;
    n -= k;
  }
  return 0;
}

int Connection::poll(Completion* out, int max) {
  ibv_wc wc[32];
  const int n = ibv_poll_cq(cq_, std::min(max, 32), wc);
  for (int i = 0; i < n; ++i) {
    Completion& c = out[i];
    c.wr_id = wc[i].wr_id;
    c.ok = wc[i].status == IBV_WC_SUCCESS;
    c.status = wc[i].status;
    c.opcode = wc[i].opcode;
    // On error the opcode is undefined: receives are told apart by wr_id (slot numbers).
    c.recv = c.ok ? (wc[i].opcode & IBV_WC_RECV) != 0 : (wc[i].wr_id >> 56) == 0;
    c.imm = (wc[i].wc_flags & IBV_WC_WITH_IMM) ? ntohl(wc[i].imm_data) : 0;
    c.byte_len = wc[i].byte_len;
  }
  return n;
}

bool Connection::rearm(bool force) {
  unsigned events = 0;
  ibv_cq* cq;
  void* ctx;
  while (ibv_get_cq_event(comp_, &cq, &ctx) == 0) ++events;
  if (events) ibv_ack_cq_events(cq_, events);
  if (events || force) return ibv_req_notify_cq(cq_, 0) == 0;
  return true;
}

bool Connection::peer_gone() {
  if (gone_ || !events_) return gone_;
  rdma_cm_event* ev = nullptr;
  while (rdma_get_cm_event(events_, &ev) == 0) {
    if (ev->event == RDMA_CM_EVENT_DISCONNECTED || ev->event == RDMA_CM_EVENT_DEVICE_REMOVAL ||
        ev->event == RDMA_CM_EVENT_TIMEWAIT_EXIT)
      gone_ = true;
    rdma_ack_cm_event(ev);
  }
  return gone_;
}

int Connection::cq_fd() const { return comp_ ? comp_->fd : -1; }
int Connection::cm_fd() const { return events_ ? events_->fd : -1; }
uint32_t Connection::qp_num() const { return id_ && id_->qp ? id_->qp->qp_num : 0; }

Result<std::unique_ptr<Connection>> connect(const std::string& host, const std::string& port,
                                            RingShape shape, DeviceTable& devices,
                                            std::chrono::milliseconds timeout,
                                            const std::string& source_ip) {
  const auto deadline = Clock::now() + timeout;
  const std::string where = host + ":" + port;
  auto ai = resolve(host, port, false);
  if (!ai) return ai.status();
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> res(*ai, ::freeaddrinfo);
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> src(nullptr, ::freeaddrinfo);
  if (!source_ip.empty()) {
    auto s = resolve(source_ip, "0", true);
    if (!s) return s.status();
    src.reset(*s);
  }
  std::unique_ptr<Connection> c(new Connection());
  c->events_ = rdma_create_event_channel();
  if (!c->events_) return cm_error("rdma_create_event_channel");
  set_nonblocking(c->events_->fd);
  if (rdma_create_id(c->events_, &c->id_, nullptr, RDMA_PS_TCP) != 0)
    return cm_error("rdma_create_id");
  auto expect = [&](rdma_cm_event_type want, const char* step) -> Status {
    rdma_cm_event* ev = next_event(c->events_, deadline);
    if (!ev)
      return Status(Code::kTimeout, "rdma " + std::string(step) + " to " + where +
                                        ": no answer before the deadline (" +
                                        std::to_string(timeout.count()) + " ms were left)");
    const auto got = ev->event;
    const int status = ev->status;
    if (got == want && want == RDMA_CM_EVENT_ESTABLISHED) {
      const auto& p = ev->param.conn;
      if (p.private_data_len >= sizeof(RingInfo)) std::memcpy(&c->peer_, p.private_data, sizeof(RingInfo));
    }
    rdma_ack_cm_event(ev);
    if (got == want) return Status::ok();
    return Status(Code::kIo, "rdma " + std::string(step) + " to " + where + " failed: " +
                                 rdma_event_str(got) + " (status " + std::to_string(status) +
                                 ")" + (got == RDMA_CM_EVENT_REJECTED ? ": nobody listens there" : ""));
  };
  if (rdma_resolve_addr(c->id_, src ? src->ai_addr : nullptr, res->ai_addr,
                        std::max(1, remaining_ms(deadline))) != 0)
    return cm_error("rdma_resolve_addr " + where +
                    (source_ip.empty() ? "" : " from " + source_ip));
  if (Status s = expect(RDMA_CM_EVENT_ADDR_RESOLVED, "address resolution"); !s.is_ok()) return s;
  if (rdma_resolve_route(c->id_, std::max(1, remaining_ms(deadline))) != 0)
    return cm_error("rdma_resolve_route " + where);
  if (Status s = expect(RDMA_CM_EVENT_ROUTE_RESOLVED, "route resolution"); !s.is_ok()) return s;
  if (Status s = c->setup(c->id_, shape, devices); !s.is_ok()) return s;
  RingInfo mine = c->local_info();
  rdma_conn_param p{};
  p.private_data = &mine;
  p.private_data_len = sizeof(mine);
  p.initiator_depth = 1;
  p.responder_resources = 1;
  p.retry_count = 7;
  p.rnr_retry_count = 7;
  if (rdma_connect(c->id_, &p) != 0) return cm_error("rdma_connect " + where);
  if (Status s = expect(RDMA_CM_EVENT_ESTABLISHED, "connect"); !s.is_ok()) return s;
  if (c->peer_.magic != kRingMagic)
    return Status(Code::kProtocol, "rdma peer at " + where + " is not a tern rdma endpoint");
  return c;
}

// ---- Listener -----------------------------------------------------------------------------

Listener::~Listener() {
  pending_.clear();
  if (id_) rdma_destroy_id(id_);
  if (events_) rdma_destroy_event_channel(events_);
}

Result<std::unique_ptr<Listener>> Listener::listen(const std::string& host,
                                                   const std::string& port, RingShape shape) {
  auto ai = resolve(host, port, true);
  if (!ai) return ai.status();
  std::unique_ptr<addrinfo, void (*)(addrinfo*)> res(*ai, ::freeaddrinfo);
  std::unique_ptr<Listener> l(new Listener());
  l->shape_ = shape;
  l->events_ = rdma_create_event_channel();
  if (!l->events_) return cm_error("rdma_create_event_channel");
  set_nonblocking(l->events_->fd);
  if (rdma_create_id(l->events_, &l->id_, nullptr, RDMA_PS_TCP) != 0)
    return cm_error("rdma_create_id");
  if (rdma_bind_addr(l->id_, res->ai_addr) != 0)
    return cm_error("rdma_bind_addr " + host + ":" + port);
  if (rdma_listen(l->id_, 128) != 0) return cm_error("rdma_listen on " + host + ":" + port);
  return l;
}

uint16_t Listener::port() const { return ntohs(rdma_get_src_port(id_)); }

std::string Listener::device_name() const {
  return id_ && id_->verbs ? ibv_get_device_name(id_->verbs->device) : "";
}

Status Listener::poll(int timeout_ms, DeviceTable& devices,
                      std::vector<std::unique_ptr<Connection>>& out) {
  const auto deadline = Clock::now() + std::chrono::milliseconds(timeout_ms);
  while (rdma_cm_event* ev = next_event(events_, deadline)) {
    rdma_cm_id* id = ev->id;
    const auto type = ev->event;
    if (type == RDMA_CM_EVENT_CONNECT_REQUEST) {
      RingInfo peer;
      const auto& p = ev->param.conn;
      const bool ours = p.private_data_len >= sizeof(RingInfo) &&
                        (std::memcpy(&peer, p.private_data, sizeof(peer)), peer.magic == kRingMagic);
      rdma_ack_cm_event(ev);
      std::unique_ptr<Connection> c(new Connection());
      Status s = ours ? c->setup(id, shape_, devices)
                      : Status(Code::kProtocol, "not a tern rdma peer");
      c->peer_ = peer;
      RingInfo mine = c->local_info();
      rdma_conn_param cp{};
      cp.private_data = &mine;
      cp.private_data_len = sizeof(mine);
      cp.initiator_depth = 1;
      cp.responder_resources = 1;
      cp.rnr_retry_count = 7;
      if (!s.is_ok() || rdma_accept(id, &cp) != 0) {
        rdma_reject(id, nullptr, 0);
        if (!c->id_) rdma_destroy_id(id);
        continue;  // c's destructor frees what setup made
      }
      pending_.push_back(std::move(c));
      continue;
    }
    auto it = std::find_if(pending_.begin(), pending_.end(),
                           [&](const auto& c) { return c->id_ == id; });
    rdma_ack_cm_event(ev);
    if (it == pending_.end()) continue;
    if (type == RDMA_CM_EVENT_ESTABLISHED) {
      std::unique_ptr<Connection> c = std::move(*it);
      pending_.erase(it);
      if (Status s = c->own_events(); !s.is_ok()) return s;
      out.push_back(std::move(c));
      break;  // hand it out now; later events wait for the next call
    } else if (type == RDMA_CM_EVENT_REJECTED || type == RDMA_CM_EVENT_CONNECT_ERROR ||
               type == RDMA_CM_EVENT_UNREACHABLE || type == RDMA_CM_EVENT_DISCONNECTED) {
      pending_.erase(it);
    }
  }
  return Status::ok();
}

}  // namespace tern::rdma
