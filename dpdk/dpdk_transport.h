// The dpdk transport ("dpdk:DEVARGS"): kernel-bypass Ethernet channels with reliable ordered
// delivery, one RX/TX queue pair per channel on one DPDK port (docs/dpdk.md).
//
//   dpdk:net_memif0,socket=/run/tern.sock   two processes over memif (shared memory)
//   dpdk:net_ring,name=NAME                 two transports of one process (tests)
//   dpdk:net_af_packet0,iface=veth0         af_packet, or any virtual device DPDK can probe
//   dpdk:                                   (listen only) memif on a fresh abstract socket
//
// The destination listens (memif server) and returns the URI the source connects with (memif
// client, same socket and queue count). Channel i uses queue pair i; the first frame on each is
// the hello, as on every transport. The EAL starts on first use, once per process (eal.h).
//
// Threads: a DpdkTransport is used by one control thread at a time; each channel by its owner.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/toolkit/hello_transport.h"
#include "dataplane/toolkit/session_gatherer.h"

namespace tern {
namespace dpdk {
class Port;
struct Address;
}  // namespace dpdk

// OK when the EAL is up (starting it if needed) and a memif port can be created; otherwise
// why not, for choose_default_transport and for tests that skip.
Status dpdk_can_start();
// The registry entry (transports/builtin_transports.cc): usable when dpdk_can_start().
TransportRegistration dpdk_transport_registration();

class DpdkTransport final : public toolkit::HelloTransport {
 public:
  DpdkTransport();
  ~DpdkTransport() override;
  DpdkTransport(const DpdkTransport&) = delete;
  DpdkTransport& operator=(const DpdkTransport&) = delete;

  std::string_view name() const override { return "dpdk"; }
  Result<std::string> listen(const std::string& address) override;
  Result<ChannelSet> accept(std::chrono::milliseconds timeout) override;
  std::vector<Status> take_rejected() override { return std::exchange(rejected_, {}); }
  // The PCI address of the listening or (first) connected port when it is a PCI device, else "".
  std::string device_pci() const override;

 private:
  // HelloTransport: one channel per hello, each hello sent unchanged.
  Result<ChannelSet> connect_with_hellos(const std::string& address,
                                         const std::vector<HelloPayload>& hellos,
                                         std::chrono::milliseconds timeout) override;

  std::shared_ptr<dpdk::Port> listen_port_;
  // Ports this transport connected: kept open while it lives, so closing a channel does not
  // take the link (and frames still in its rings) down with it; the peer sees the FIN first.
  std::vector<std::shared_ptr<dpdk::Port>> connected_;
  std::unique_ptr<dpdk::Address> listen_address_;
  std::vector<Status> rejected_;  // queues accept() dropped, for take_rejected (control thread)
  // One candidate channel per queue while a session is gathered, kept across accept() calls
  // (a hello and its handshake may straddle two); dropped once a session is taken.
  std::unique_ptr<toolkit::SessionGatherer> gatherer_;
};

}  // namespace tern
