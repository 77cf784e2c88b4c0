#include "tests/fault/fault_rig.h"

#include <unistd.h>

#include <cstdlib>
#include <filesystem>

#ifdef TERN_HAVE_DPDK
#include "dpdk/dpdk_transport.h"
#endif

namespace tern::fault {

using control::Ternd;

bool rdma_device_here() {
  std::error_code ec;
  std::filesystem::directory_iterator it("/sys/class/infiniband", ec);
  return !ec && it != std::filesystem::directory_iterator();
}

FaultRig::FaultRig(const FaultCase& c, const std::string& dir, const std::string& tag)
    : case_(c), dir_(dir) {
  if (c.transport == Transport::kRdma) {
    check_rdma(tag);
    return;
  }
  if (c.transport == Transport::kDpdk) {
#ifdef TERN_HAVE_DPDK
    if (Status s = dpdk_can_start(); !s.is_ok()) {
      skip_ = "DPDK cannot start here: " + s.to_string();
      return;
    }
#else
    skip_ = "the dpdk transport is not built (meson -Ddpdk=enabled, needs libdpdk-dev)";
    return;
#endif
  }
  if (c.transport == Transport::kTcp || af_packet()) {
    // af_packet carries tern's 8 KiB segments whole only with jumbo frames (docs/dpdk.md).
    link_ = std::make_unique<NetnsLink>(tag, af_packet() ? 9000 : 1500);
    if (!link_->ok()) skip_ = "cannot build the network namespaces: " + link_->error();
  }
}

void FaultRig::check_rdma(const std::string& tag) {
#ifndef TERN_HAVE_RDMA
  skip_ = "the rdma transport is not built (needs libibverbs-dev and librdmacm-dev)";
  return;
#endif
  if (!rdma_device_here()) {
    skip_ = "no RDMA device here: the rdma row runs in the soft-RoCE VM (meson test --suite rdma "
            "rdma_fault, or tests/rdma/run.sh fault_matrix_test)";
    return;
  }
  if (case_.fault == Fault::kCut) {
    rdma_link_ = std::make_unique<RdmaLink>(tag);
    if (!rdma_link_->ok()) skip_ = "cannot build the rxe pair on veth to cut: " + rdma_link_->error();
    return;
  }
  const char* ip = std::getenv("TERN_RDMA_IP");
  if (ip == nullptr || *ip == 0)
    skip_ = "TERN_RDMA_IP (an address of the RDMA device's netdev) is not set";
}

std::vector<std::string> FaultRig::rdma_device(
    const std::string& (RdmaLink::*device)() const) const {
  if (!rdma_link_) return {};
  return {"--rdma-device", ((*rdma_link_).*device)()};
}

std::string FaultRig::link_error() const {
  if (rdma_link_) return rdma_link_->error();
  return link_ ? link_->error() : "no link to cut";
}

bool FaultRig::af_packet() const {
  return case_.transport == Transport::kDpdk && case_.fault == Fault::kCut;
}

std::string FaultRig::listen_uri() {
  if (case_.transport == Transport::kTcp)
    return std::string("tcp:") + NetnsLink::kDestinationAddress + ":0";
  if (case_.transport == Transport::kRdma)
    return std::string("rdma:") +
           (rdma_link_ ? RdmaLink::kDestinationAddress : std::getenv("TERN_RDMA_IP")) + ":0";
  if (af_packet()) return "dpdk:net_af_packet0,iface=" + link_->destination_interface();
  // memif names an abstract socket: unique per listen, nothing to clean up.
  return "dpdk:net_memif0,socket=/run/tern-fault-" + std::to_string(::getpid()) + "-" +
         dir_.substr(dir_.rfind('-') + 1) + "-" + std::to_string(listens_++) + ".sock";
}

std::unique_ptr<Ternd> FaultRig::start_destination(const std::string& name,
                                                  std::vector<std::string> extra, bool deferred) {
  std::vector<std::string> args{"--workers", "1", "--incoming",
                                deferred ? std::string("defer") : listen_uri()};
  args.insert(args.end(), extra.begin(), extra.end());
  for (const std::string& a : rdma_device(&RdmaLink::destination_device)) args.push_back(a);
  return std::make_unique<Ternd>(
      dir_, name, args,
      std::vector<std::string>{},
      link_ ? link_->destination_launcher() : std::vector<std::string>{}, /*own_group=*/true);
}

std::unique_ptr<Ternd> FaultRig::start_source(const std::string& name,
                                             std::vector<std::string> extra) {
  std::vector<std::string> args{"--workers", "1", "--prefill", "--guest", kFaultGuest};
  args.insert(args.end(), extra.begin(), extra.end());
  for (const std::string& a : rdma_device(&RdmaLink::source_device)) args.push_back(a);
  return std::make_unique<Ternd>(
      dir_, name, args,
      std::vector<std::string>{}, link_ ? link_->source_launcher() : std::vector<std::string>{},
      /*own_group=*/true);
}

std::string FaultRig::source_uri(const std::string& incoming_uri) const {
  if (!af_packet()) return incoming_uri;
  // af_packet: the source sends through its own end of the veth pair.
  std::string uri = incoming_uri;
  const std::string from = "iface=" + link_->destination_interface();
  if (size_t at = uri.find(from); at != std::string::npos)
    uri.replace(at, from.size(), "iface=" + link_->source_interface());
  return uri;
}

bool FaultRig::cut() { return rdma_link_ ? rdma_link_->cut() : link_ && link_->cut(); }
bool FaultRig::restore() { return rdma_link_ ? rdma_link_->restore() : link_ && link_->restore(); }

}  // namespace tern::fault
