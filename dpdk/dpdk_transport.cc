#include "dpdk/dpdk_transport.h"


#include <unistd.h>

#include <algorithm>
#include <cstdlib>
#include <thread>

#include "dataplane/toolkit/hello.h"
#include "dataplane/toolkit/session_gatherer.h"
#include "dpdk/detail/address.h"
#include "dpdk/detail/dpdk_channel.h"
#include "dpdk/detail/eal.h"
#include "dpdk/detail/port.h"
#include "dpdk/detail/unix_listener.h"

namespace tern {
namespace {

using toolkit::Clock;

// Address plus the TERN_DPDK_FAULTS fault options (which an address's own options override).
Result<dpdk::Address> address_of(const std::string& address) {
  dpdk::FaultConfig env;
  if (const char* spec = std::getenv("TERN_DPDK_FAULTS")) {
    if (Status s = dpdk::parse_faults(spec, env); !s.is_ok())
      return Status(s.code(), "TERN_DPDK_FAULTS: " + s.message());
  }
  auto a = dpdk::parse_address(address);
  if (!a) return a.status();
  if (!a->faults.any()) {
    const uint64_t seed = a->faults.seed;
    a->faults = env;
    if (seed != 1) a->faults.seed = seed;
  }
  return a;
}

dpdk::ChannelConfig config_of(const dpdk::Address& a) {
  // Zero-copy transmit only where the PMD copies inside tx_burst (memif): net_ring would hand
  // the guest's page to the receiver itself, past the sender's completion.
  return {a.window, a.rto_us, a.idle_us, a.faults,
          a.zero_copy && a.kind == dpdk::PortKind::kMemif, a.verify_payload()};
}

// Waits until the port's peer is attached (memif: the client connected).
bool wait_link(const dpdk::Port& port, Clock::time_point deadline) {
  while (!port.link_up()) {
    if (Clock::now() >= deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  return true;
}

// True when a unix socket named `path` (abstract "@path" or a file) is listening on this host:
// a memif client is only created once its server listens (a client whose connect failed
// leaves the 22.11 PMD in a bad state).

}  // namespace

Status dpdk_can_start() {
  if (const Status& s = dpdk::eal_start(); !s.is_ok()) return s;
  // The memif driver is a plugin: probing a throwaway server port proves it is loaded.
  auto a = dpdk::parse_address("net_memif0,socket=/run/tern-probe-" +
                               std::to_string(::getpid()) + ".sock,queues=3");
  if (!a) return a.status();
  auto port = dpdk::Port::open(*a, true);
  if (!port)
    return Status(Code::kUnavailable, "dpdk cannot create a memif port: " + port.status().message());
  return Status::ok();
}

std::string DpdkTransport::device_pci() const {
  if (listen_port_) return listen_port_->pci_address();
  return connected_.empty() ? "" : connected_.front()->pci_address();
}

TransportRegistration dpdk_transport_registration() {
  return {"dpdk", [] { return std::unique_ptr<Transport>(new DpdkTransport()); },
          [] {
            Status s = dpdk_can_start();
            if (s.is_ok()) return TransportAvailability{true, "dpdk can start"};
            return TransportAvailability{false, "dpdk cannot start: " + s.message()};
          }};
}

DpdkTransport::DpdkTransport() = default;
DpdkTransport::~DpdkTransport() = default;

Result<std::string> DpdkTransport::listen(const std::string& address) {
  if (listen_port_) return Status(Code::kInvalidArgument, "dpdk: already listening");
  // "dpdk:" alone: memif on an abstract socket private to this process (the source learns it
  // from the returned URI).
  auto a = address_of(address.empty() ? "net_memif0,socket=/run/tern-" +
                                            std::to_string(::getpid()) + ".sock"
                                      : address);
  if (!a) return a.status();
  if (a->role == "client")
    return Status(Code::kInvalidArgument, "dpdk listen on '" + address +
                                              "': the destination is the memif server (role=server)");
  auto port = dpdk::Port::open(*a, true);
  if (!port) return port.status();
  listen_port_ = std::move(*port);
  listen_address_ = std::make_unique<dpdk::Address>(*a);
  return "dpdk:" + a->peer_address("client");
}

Result<ChannelSet> DpdkTransport::accept(std::chrono::milliseconds timeout) {
  if (!listen_port_) return Status(Code::kInvalidArgument, "dpdk: accept() before listen()");
  const auto deadline = Clock::now() + timeout;
  const std::string where = "dpdk accept on " + listen_port_->name();
  if (!wait_link(*listen_port_, deadline))
    return toolkit::timeout_status(where + " (no peer attached)", timeout);
  // One candidate channel per queue; each hello says which channel its queue carries. The
  // gatherer reads the hellos (and runs the channel handshake when there is a key); a bad one
  // drops that queue's channel only. It lives until a session is taken: queues whose peer side
  // was never opened are then dropped quietly.
  if (!gatherer_) {
    toolkit::GatherLimits limits;
    limits.hello_timeout = handshake_timeout_;
    limits.max_waiting = std::max<size_t>(limits.max_waiting, listen_port_->queues());
    gatherer_ = std::make_unique<toolkit::SessionGatherer>(limits);
    gatherer_->set_peer_key(peer_key_);
    gatherer_->set_tls(frame_tls());
    // Fresh channels: the next frame addressed to this listener names its peer (af_packet).
    listen_port_->forget_peer();
    for (uint16_t q = 0; q < listen_port_->queues(); ++q)
      gatherer_->add_connection(
          std::make_unique<dpdk::DpdkChannel>(listen_port_, q, config_of(*listen_address_)),
          "queue " + std::to_string(q));
  }
  while (true) {
    const bool progress = gatherer_->poll();
    for (Status& s : gatherer_->take_rejected())
      rejected_.push_back(Status(s.code(), where + ": " + s.message()));
    if (auto set = gatherer_->take_complete()) {
      gatherer_.reset();
      return std::move(*set);
    }
    if (gatherer_->waiting() == 0 && gatherer_->progress() == "no channel") {
      gatherer_.reset();  // every queue dropped: fresh channels on the next call
      return toolkit::timeout_status(where + " (every queue's channel was dropped)", timeout);
    }
    if (Clock::now() >= deadline)
      return toolkit::timeout_status(where + " (have " + gatherer_->progress() + ")", timeout);
    if (!progress) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

Result<ChannelSet> DpdkTransport::connect_with_hellos(const std::string& address,
                                                      const std::vector<HelloPayload>& hellos,
                                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto a = address_of(address);
  if (!a) return a.status();
  if (a->role == "server")
    return Status(Code::kInvalidArgument, "dpdk connect to '" + address +
                                              "': the source is the memif client (role=client)");
  if (hellos.size() > a->queues)
    return Status(Code::kInvalidArgument,
                  "dpdk: " + std::to_string(hellos.size()) + " channels but the port has " +
                      std::to_string(a->queues) + " queue pairs (one per channel; set queues=N)");
  if (a->kind == dpdk::PortKind::kMemif) {
    const std::string sock = dpdk::memif_socket_path(*a);
    if (dpdk::memif_socket_retired(sock))
      return Status(Code::kUnavailable, "dpdk: the memif server on socket " + sock +
                                            " in this process is closed");
    while (dpdk::unix_accept_queue(sock) < 0) {
      if (Clock::now() >= deadline)
        return Status(Code::kUnavailable, "dpdk: no memif server listens on socket " + sock +
                                              " (start the destination first)");
      std::this_thread::sleep_for(std::chrono::milliseconds(2));
    }
  }
  // A memif client connects once, when started; if the handshake does not complete (seen
  // rarely on a loaded host), a fresh client port tries again until the deadline. Not while
  // the server has connections to accept (stopped or busy): closing ours before it is
  // accepted would make the server's interrupt thread abort (dpdk/detail/device_close.h).
  Result<std::shared_ptr<dpdk::Port>> port = Status(Code::kInternal, "no port");
  while (true) {
    if (!port || a->kind != dpdk::PortKind::kMemif ||
        dpdk::unix_accept_queue(dpdk::memif_socket_path(*a)) <= 0) {
      port = Status(Code::kInternal, "no port");  // the old one goes first (same memif id)
      port = dpdk::Port::open(*a, false);
      if (!port) return port.status();
    }
    const auto attempt = std::min(deadline, Clock::now() + std::chrono::seconds(2));
    if (wait_link(**port, attempt)) break;
    if (Clock::now() >= deadline)
      return Status(Code::kUnavailable, "dpdk: no peer on '" + address + "' within " +
                                            std::to_string(timeout.count()) +
                                            " ms (start the destination first)");
  }
  ChannelSet out;
  for (uint16_t q = 0; q < hellos.size(); ++q) {
    auto ch = std::make_unique<dpdk::DpdkChannel>(*port, q, config_of(*a));
    if (Status s = toolkit::send_hello(*ch, hellos[q], deadline); !s.is_ok()) return s;
    out.push_back(std::move(ch));
  }
  connected_.push_back(std::move(*port));
  return out;
}

}  // namespace tern
