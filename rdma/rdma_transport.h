// The rdma transport ("rdma:HOST:PORT[,device=NAME]"): one RC queue pair per channel,
// connected with librdmacm on the device of device_choice.h, each with its own CQ polled by
// the channel's worker. Pages move by RDMA WRITE WITH IMM into the peer's registered slot ring;
// small frames (requests, control) by inline SEND; see rdma_channel.h and
// detail/slot_protocol.h. All ibv_*/rdma_* calls live in verbs_shim.cc.
//
// Memory: register_memory() announces guest RAM, which the channels register in 64 MiB chunks
// on first use. On the source, so that pages are written from it without a copy. On the
// destination, for remote write (direct placement, rdma_channel.h): the engine announces guest
// RAM there only when no postcopy is armed, since registering pins pages that postcopy needs
// missing; a destination that announces nothing takes every page through its slot rings and
// copies it to where the Landing says. The rkey of a granted chunk lets the peer write that
// chunk of guest RAM and nothing else: the slot rings, credit words and any other memory stay
// out of its reach; and release_memory(), which the destination engine calls once every page
// has landed and before the guest runs there, deregisters it, so that the keys stop working.
//
// Threads: one control thread uses a RdmaTransport; listen() starts an acceptor thread that
// completes incoming connections (as a kernel TCP backlog would) and hands them to accept().
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/toolkit/hello.h"
#include "dataplane/toolkit/hello_transport.h"
#include "dataplane/toolkit/session_gatherer.h"
#include "dataplane/transport.h"
#include "rdma/memory_map.h"

namespace tern {

namespace rdma {
class Connection;
class DeviceTable;
class Listener;
class RdmaChannel;
struct Region;
}  // namespace rdma

// Direct placement, process-wide (tests, stats): chunks of guest RAM granted for remote write,
// page frames received by direct placement (no copy; rdma_channel.h).
struct RdmaDirectCounters {
  uint64_t grants = 0;
  uint64_t placed_frames = 0;
};
RdmaDirectCounters rdma_direct_counters();

// True when libibverbs sees at least one RDMA device (the default-transport choice).
bool rdma_device_present();
// Why (not) present: "device rxe0" or "no RDMA device (...)".
std::string rdma_device_summary();
// The registry entry (transports/builtin_transports.cc): usable when an RDMA device is present.
TransportRegistration rdma_transport_registration();

class RdmaTransport final : public toolkit::HelloTransport {
 public:
  RdmaTransport();
  ~RdmaTransport() override;
  RdmaTransport(const RdmaTransport&) = delete;
  RdmaTransport& operator=(const RdmaTransport&) = delete;

  std::string_view name() const override { return "rdma"; }
  // `address` is HOST:PORT[,device=NAME] (HOST an address of an RDMA device's netdev, or a
  // wildcard with a named device); port 0 picks a free port.
  Result<std::string> listen(const std::string& address) override;
  // A timeout keeps the channels accepted so far: the next accept() continues the session.
  // A bad or late hello drops that connection only (take_rejected).
  Result<ChannelSet> accept(std::chrono::milliseconds timeout) override;
  std::vector<Status> take_rejected() override { return gatherer_.take_rejected(); }
  Status register_memory(void* addr, size_t len) override;
  void release_memory() override;
  // The PCI address of the device the channels connected through (sysfs), or "" (rxe).
  std::string device_pci() const override;

 private:
  // HelloTransport: one channel per hello, each hello sent unchanged.
  Result<ChannelSet> connect_with_hellos(const std::string& address,
                                         const std::vector<HelloPayload>& hellos,
                                         std::chrono::milliseconds timeout) override;
  // x509 over rdma: the destination's certificate must name HOST (unless tls-hostname).
  std::string tls_default_host(const std::string& address) const override;

  void accept_loop();

  std::unique_ptr<rdma::DeviceTable> devices_;  // guarded by devices_mu_
  mutable std::mutex devices_mu_;
  std::shared_ptr<rdma::MemoryMap> memory_;     // see memory_map.h for its threading
  bool listening_ = false;
  std::string listen_uri_;
  std::unique_ptr<rdma::Listener> listener_;    // acceptor thread only, once started
  std::thread acceptor_;
  std::atomic<bool> stop_{false};
  std::mutex mu_;                               // guards ready_, acceptor_error_
  std::condition_variable cv_;
  std::deque<std::unique_ptr<rdma::Connection>> ready_;
  Status acceptor_error_;
  // accept() state kept across its timeouts (control thread only): connections waiting for
  // their hello, sessions being gathered.
  tern::toolkit::SessionGatherer gatherer_;
};

}  // namespace tern
