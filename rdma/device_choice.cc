#include "rdma/device_choice.h"

#include <hwloc.h>
#include <limits.h>
#include <unistd.h>

#include <cctype>

namespace tern::rdma {

namespace {

std::string names_of(const std::vector<DeviceInfo>& devices) {
  std::string s;
  for (const DeviceInfo& d : devices) s += (s.empty() ? "" : ", ") + d.name;
  return s.empty() ? "none" : s;
}

DeviceChoice make(const DeviceInfo& d, std::string why) {
  return {d.name, d.ipv4.empty() ? "" : d.ipv4.front(), std::move(why)};
}

// hwloc_ibv_get_device_osdev_by_name() of hwloc/openfabrics-verbs.h, which would pull in
// <infiniband/verbs.h> (only verbs_shim.cc includes it).
hwloc_obj_t osdev_by_name(hwloc_topology_t topo, const std::string& name) {
  for (hwloc_obj_t o = hwloc_get_next_osdev(topo, nullptr); o; o = hwloc_get_next_osdev(topo, o))
    if (o->attr->osdev.type == HWLOC_OBJ_OSDEV_OPENFABRICS && o->name && name == o->name) return o;
  return nullptr;
}

}  // namespace

Result<DeviceChoice> choose_device(const std::vector<DeviceInfo>& devices,
                                   const std::string& wanted,
                                   const std::function<Distance(const std::string&)>& distance) {
  if (!wanted.empty()) {
    for (const DeviceInfo& d : devices)
      if (d.name == wanted) return make(d, "named");
    return Status(Code::kNotFound, "rdma device '" + wanted +
                                       "' does not exist; devices here: " + names_of(devices));
  }
  if (devices.empty())
    return Status(Code::kNotFound, "no RDMA device (ibv_get_device_list found none)");
  if (devices.size() == 1) return make(devices.front(), "the only device");
  size_t best = 0;
  Distance best_d = distance(devices[0].name);
  for (size_t i = 1; i < devices.size(); ++i) {
    const Distance d = distance(devices[i].name);
    if (d < best_d) best = i, best_d = d;
  }
  static const char* kWhy[] = {"nearest the workers' NUMA node",
                               "on another NUMA node than the workers (none is nearer)",
                               "first listed (hwloc places no device)"};
  return make(devices[best], kWhy[best_d]);
}

std::map<std::string, Distance> hwloc_distances(const std::vector<DeviceInfo>& devices) {
  std::map<std::string, Distance> out;
  for (const DeviceInfo& d : devices) out[d.name] = kUnknown;
  hwloc_topology_t topo;
  if (hwloc_topology_init(&topo) != 0) return out;
  hwloc_topology_set_io_types_filter(topo, HWLOC_TYPE_FILTER_KEEP_IMPORTANT);
  if (hwloc_topology_load(topo) != 0) {
    hwloc_topology_destroy(topo);
    return out;
  }
  // The workers' node: that of the first core of the CPUs this process may use.
  hwloc_bitmap_t near = hwloc_bitmap_alloc();
  hwloc_obj_t core = hwloc_get_obj_inside_cpuset_by_type(
      topo, hwloc_topology_get_topology_cpuset(topo), HWLOC_OBJ_CORE, 0);
  if (core && core->nodeset) hwloc_cpuset_from_nodeset(topo, near, core->nodeset);
  for (const DeviceInfo& d : devices) {
    hwloc_obj_t os = osdev_by_name(topo, d.name);
    hwloc_obj_t anc = os ? hwloc_get_non_io_ancestor_obj(topo, os) : nullptr;
    if (!anc || !anc->cpuset || hwloc_bitmap_iszero(near)) continue;
    out[d.name] = hwloc_bitmap_intersects(anc->cpuset, near) ? kNear : kFar;
  }
  hwloc_bitmap_free(near);
  hwloc_topology_destroy(topo);
  return out;
}

std::string pci_address_from_link(const std::string& target) {
  const std::string last = target.substr(target.rfind('/') + 1);  // whole string if no '/'
  // DDDD:BB:DD.F, hexadecimal except the function digit.
  static constexpr char kShape[] = "xxxx:xx:xx.d";
  if (last.size() != sizeof(kShape) - 1) return "";
  for (size_t i = 0; i < last.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(last[i]);
    const bool ok = kShape[i] == 'x'   ? std::isxdigit(c) != 0
                    : kShape[i] == 'd' ? (c >= '0' && c <= '7')
                                       : c == static_cast<unsigned char>(kShape[i]);
    if (!ok) return "";
  }
  return last;
}

std::string device_pci_address(const std::string& device) {
  if (device.empty() || device.find('/') != std::string::npos) return "";
  char buf[PATH_MAX];
  const std::string link = "/sys/class/infiniband/" + device + "/device";
  const ssize_t n = ::readlink(link.c_str(), buf, sizeof(buf) - 1);
  if (n <= 0) return "";
  return pci_address_from_link(std::string(buf, static_cast<size_t>(n)));
}

}  // namespace tern::rdma
