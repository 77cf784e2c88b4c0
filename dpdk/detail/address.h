// The address part of a `dpdk:` URI: a DPDK device string (devargs) plus tern's own options,
// separated into what the PMD gets and what the transport keeps. Plain C++ (no DPDK).
//
//   net_memif0,socket=/run/tern.sock[,role=server|client][,id=N][,bsize=..,rsize=..]
//   net_ring,name=NAME              two ring ports joined inside one process (tests)
//   net_af_packet0,iface=veth0 | any other vdev devargs
// tern options, accepted on any of them: queues=N window=SEGS rto_us=US idle_us=US zerocopy=0|1
//   checksum=auto|always ep=N (the listener's endpoint id; set by listen, af_packet)
//   loss=P reorder=P dup=P corrupt=P seed=N (receive-path fault injection; docs/dpdk.md)
#pragma once

#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "dataplane/status.h"
#include "dpdk/detail/fault_injector.h"

namespace tern::dpdk {

enum class PortKind { kMemif, kRingPair, kVdev };

struct Address {
  PortKind kind = PortKind::kVdev;
  std::string device;  // the first field: "net_memif0", "net_ring", "net_af_packet0"
  std::vector<std::pair<std::string, std::string>> pmd_args;  // passed to the PMD
  std::string role;     // memif: "server", "client" or "" (chosen by listen/connect)
  std::string ring_name;
  uint16_t queues = 8;     // queue pairs: one per channel, so the most channels a link carries
  uint32_t window = 256;   // segments in flight per channel (a power of two)
  uint32_t rto_us = 10000;  // retransmission timeout
  uint32_t idle_us = 200;  // an idle channel's wait_fd fires after this (no rx interrupts)
  FaultConfig faults;
  bool zero_copy = true;   // memif: page fragments sent from guest memory (docs/dpdk.md)
  // checksum=always: check every data segment's payload checksum, even on a shared-memory
  // link (memif, net_ring), which otherwise skips it unless corruption is injected.
  bool checksum_always = false;
  // Endpoint ids on a port that does not steer (af_packet; docs/dpdk.md "Endpoint ids"):
  // `ep=N` in a connector's address is the listener's id (peer_ep); a listener's Port::open
  // sets local_ep to the id it chose, which peer_address() writes as `ep=`.
  uint32_t peer_ep = 0;
  uint32_t local_ep = 0;
  // Whether this end checks the payload checksums of what it receives (ChannelConfig).
  bool verify_payload() const {
    return checksum_always || faults.corrupt > 0 ||
           (kind != PortKind::kMemif && kind != PortKind::kRingPair);
  }

  // Devargs for rte_dev_probe: the device renamed to `unique` (one process may open several)
  // and `role` set for memif.
  std::string pmd_devargs(const std::string& unique, const std::string& role) const;
  // The address a peer uses: same device and options, memif role `role`; no fault options
  // (those are local to each receiver).
  std::string peer_address(const std::string& role) const;
};

Result<Address> parse_address(const std::string& address);
// Fault options from a "loss=0.01,reorder=0.01,seed=3" string (the TERN_DPDK_FAULTS variable).
Status parse_faults(const std::string& spec, FaultConfig& out);

}  // namespace tern::dpdk
