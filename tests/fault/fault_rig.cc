#include "tests/fault/fault_rig.h"

#include <unistd.h>

#ifdef TERN_HAVE_DPDK
#include "dpdk/dpdk_transport.h"
#endif

namespace tern::fault {

using control::Ternd;

FaultRig::FaultRig(const FaultCase& c, const std::string& dir, const std::string& tag)
    : case_(c), dir_(dir) {
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

bool FaultRig::af_packet() const {
  return case_.transport == Transport::kDpdk && case_.fault == Fault::kCut;
}

std::string FaultRig::listen_uri() {
  if (case_.transport == Transport::kTcp)
    return std::string("tcp:") + NetnsLink::kDestinationAddress + ":0";
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
  return std::make_unique<Ternd>(
      dir_, name, args,
      std::vector<std::string>{},
      link_ ? link_->destination_launcher() : std::vector<std::string>{}, /*own_group=*/true);
}

std::unique_ptr<Ternd> FaultRig::start_source(const std::string& name,
                                             std::vector<std::string> extra) {
  std::vector<std::string> args{"--workers", "1", "--prefill", "--guest", kFaultGuest};
  args.insert(args.end(), extra.begin(), extra.end());
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

bool FaultRig::cut() { return link_ && link_->cut(); }
bool FaultRig::restore() { return link_ && link_->restore(); }

}  // namespace tern::fault
