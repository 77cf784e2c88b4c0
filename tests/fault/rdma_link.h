// A link between two soft-RoCE devices that can really be cut: a veth pair (the source's end
// and the destination's end, 10.78.0.1 and 10.78.0.2) in this network namespace, an rxe device
// on each end, and routing that sends RoCE traffic between the two local addresses over the
// wire instead of the loopback device. Linux 6.1's rxe binds its UDP socket and routes in the
// initial namespace only, so the pair cannot sit in two namespaces as tcp's does; instead the
// `local` table's rule moves behind one rule per end ("oif END lookup main", which rxe's and
// rdma_cm's route lookups with the device's ifindex then match), both ends accept packets from
// a local source (accept_local), and each end has the other's MAC as a permanent neighbour.
// Cutting points both neighbours at a MAC nobody has: every frame still leaves, and the other
// end drops it as not addressed to it (RC retries then fail, new connections get no answer);
// restoring puts the real MACs back. Not the links down: rxe turns a send without a route into
// a QP error, on QP1 too, and the port's MAD traffic (the CM) never recovers from that, so no
// connection could be made after the link came back, unlike on a real NIC. Everything is
// undone on destruction, the local rule too. Needs
// root, iproute2's `ip` and `rdma`, and the rdma_rxe and veth modules (the soft-RoCE VM of
// tests/rdma has them). One link per process at a time (fixed addresses). Test thread only.
#pragma once

#include <string>

namespace tern::fault {

class RdmaLink {
 public:
  // `tag`: short and unique (interface names are at most 15 bytes). Check ok() / error().
  explicit RdmaLink(const std::string& tag);
  ~RdmaLink();
  RdmaLink(const RdmaLink&) = delete;
  RdmaLink& operator=(const RdmaLink&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }

  // The rxe devices each ternd names (--rdma-device) and the destination's address.
  const std::string& source_device() const { return src_dev_; }
  const std::string& destination_device() const { return dst_dev_; }
  static constexpr const char* kSourceAddress = "10.78.0.1";
  static constexpr const char* kDestinationAddress = "10.78.0.2";

  // Frames between the ends dropped / delivered again. False, with error() set, on failure.
  bool cut();
  bool restore();

 private:
  bool run(const std::string& command);
  bool point_neighbours(const std::string& to_source_mac, const std::string& to_destination_mac);
  std::string src_if_, dst_if_, src_dev_, dst_dev_;
  std::string error_;
  bool created_ = false;
  bool moved_local_rule_ = false;
};

}  // namespace tern::fault
