// The fault-injection matrix: transport x phase x side x fault, each case named
// "TRANSPORT_PHASE_SIDE_FAULT" (e.g. tcp_postcopy_destination_cut), and the selection a run
// makes from TERN_FAULT_CASES (unset or "ci": the bounded CI set; "all": every case; else a
// comma-separated list of names or name prefixes such as "tcp_postcopy,dpdk_setup_source_kill").
// The rdma row joins "ci" and "all" only where an RDMA device is (the soft-RoCE VM of
// tests/rdma, or a host with one); by name or prefix ("rdma") it is selected anywhere.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace tern::fault {

enum class Transport { kTcp, kDpdk, kRdma };
enum class Phase { kSetup, kPrecopy, kSwitchover, kPostcopy };
enum class Side { kSource, kDestination };
// kKill: SIGKILL. kStop: SIGSTOP for longer than the handshake timeouts, then SIGCONT.
// kCut: the link between the two ternd goes down for a while, then comes back.
enum class Fault { kKill, kStop, kCut };

struct FaultCase {
  Transport transport;
  Phase phase;
  Side side;
  Fault fault;
  std::string name() const;
};
// GoogleTest prints a case by its name.
void PrintTo(const FaultCase& c, std::ostream* os);

const char* name_of(Transport t);
const char* name_of(Phase p);
const char* name_of(Side s);
const char* name_of(Fault f);

// Every case of the matrix, in a fixed order (tcp, dpdk, then rdma).
std::vector<FaultCase> all_fault_cases();
// The cases `spec` (TERN_FAULT_CASES's value; nullptr or "" or "ci" for the CI set) selects, in
// matrix order; "ci" and "all" take the rdma row's CI set / whole row only `with_rdma`. A name
// or prefix that matches no case is an error: `unknown` gets it.
std::vector<FaultCase> select_fault_cases(const char* spec, std::string* unknown = nullptr,
                                          bool with_rdma = false);

}  // namespace tern::fault
