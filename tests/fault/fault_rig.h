// The processes and the link of one fault case: destination and source ternd started for the
// case's transport (tcp: each in its own network namespace, joined by a veth pair; dpdk: memif
// between two processes, or af_packet over the veth pair for the link-cut cases, since a memif
// link is shared memory that nothing can cut; rdma: on the RDMA device whose address
// TERN_RDMA_IP names (the soft-RoCE VM's rxe0), or on an rxe pair over veth for the link-cut
// cases, tests/fault/rdma_link.h), the URI a source migrates to, and the link's cut and
// restore. One rig per case; the test thread only.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "tests/control/ternd_process.h"
#include "tests/fault/fault_matrix.h"
#include "tests/fault/netns_link.h"
#include "tests/fault/rdma_link.h"

namespace tern::fault {

// The guest every case migrates (with --prefill: every page holds data from the start, so a
// migration moves all 32 MiB): small (the matrix runs many cases), self-checking, writing
// pages all over its RAM (so lost or stale pages show) at 500 pages/s: slower than the 8 MiB/s
// (2048 pages/s) that holds precopy in its phase, so that precopy converges (ternd takes no
// new max-bandwidth during a migration).
inline constexpr const char* kFaultGuest =
    "threads,vcpus=2,ram=32M,page=4K,wss=100%,rate=250,seed=3";

// An RDMA device is here (/sys/class/infiniband lists one): the rdma row can run.
bool rdma_device_here();

class FaultRig {
 public:
  // `dir`: where the QMP sockets go; `tag`: a short unique name for the namespaces.
  FaultRig(const FaultCase& c, const std::string& dir, const std::string& tag);

  // Non-empty when this case cannot run here (with the reason).
  const std::string& skip_reason() const { return skip_; }

  // A destination waiting for a migration (`deferred`: started with `--incoming defer`, so
  // that parameters can be set before migrate-incoming arms it), or a source hosting
  // kFaultGuest; `name` names its socket (unique per rig).
  // `extra`: more ternd arguments (say --insecure).
  std::unique_ptr<control::Ternd> start_destination(const std::string& name,
                                                    std::vector<std::string> extra = {},
                                                    bool deferred = false);
  std::unique_ptr<control::Ternd> start_source(const std::string& name,
                                               std::vector<std::string> extra = {});
  // The URI a source passes to `migrate`, from the destination's query-incoming `uri`.
  std::string source_uri(const std::string& incoming_uri) const;
  // The URI a destination listens on again (migrate-recover).
  std::string listen_uri();

  // The link between the two sides: down / up again. False (with link_error()) on failure.
  bool cut();
  bool restore();
  std::string link_error() const;

 private:
  bool af_packet() const;
  void check_rdma(const std::string& tag);
  // --rdma-device DEV for the rxe pair's end, else nothing.
  std::vector<std::string> rdma_device(const std::string& (RdmaLink::*device)() const) const;
  FaultCase case_;
  std::string dir_;
  std::unique_ptr<NetnsLink> link_;
  std::unique_ptr<RdmaLink> rdma_link_;
  std::string skip_;
  int listens_ = 0;
};

}  // namespace tern::fault
