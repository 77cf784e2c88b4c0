// Which RDMA device a transport uses: the one named (in the URI's `device=` option or
// TERN_RDMA_DEVICE), or by default the one hwloc places nearest the workers' NUMA node.
//
// The choice itself is plain logic over the device list and a distance function, so that it is
// unit-tested without a device (tests/rdma/detail/slot_protocol_test.cc); hwloc_distances() is the
// real distance, read from hwloc's OpenFabrics OS-device objects.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "dataplane/status.h"
#include "rdma/verbs_shim.h"

namespace tern::rdma {

// Distance of a device from the workers' NUMA node.
enum Distance : int {
  kNear = 0,     // on (a PCI bus of) the workers' NUMA node
  kFar = 1,      // on another NUMA node
  kUnknown = 2,  // hwloc has no locality for it (a virtual device such as rxe, or no PCI info)
};

struct DeviceChoice {
  std::string name;
  std::string ipv4;  // first IPv4 address of its netdev ("" if none)
  std::string why;   // "named", "only device", "nearest the workers' NUMA node (node 0)", ...
};

// `wanted` non-empty: that device, or kNotFound naming the available ones. Else the device with
// the smallest distance (ties: the first libibverbs lists). kNotFound when there is none.
Result<DeviceChoice> choose_device(const std::vector<DeviceInfo>& devices,
                                   const std::string& wanted,
                                   const std::function<Distance(const std::string&)>& distance);

// PCI address of an RDMA device ("0000:3b:00.0"), read from /sys/class/infiniband/NAME/device;
// "" when it has none (rxe and other virtual devices) or sysfs does not say.
std::string device_pci_address(const std::string& device);
// The PCI address a sysfs `device` link points at: its last component when that is one
// ("../../../0000:00:03.0" -> "0000:00:03.0"), else "".
std::string pci_address_from_link(const std::string& target);

// hwloc's view: each named device's distance from the NUMA node of the first core workers are
// pinned to (choose_worker_cpus starts there). Loads the topology with I/O discovery.
std::map<std::string, Distance> hwloc_distances(const std::vector<DeviceInfo>& devices);

}  // namespace tern::rdma
