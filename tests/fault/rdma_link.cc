#include "tests/fault/rdma_link.h"

#include "tests/fault/shell_step.h"

#include <unistd.h>

#include <cstdio>
#include <cstdlib>
#include <fstream>

namespace tern::fault {

namespace {

constexpr const char* kRulePrefs[] = {"31", "32"};  // the two "oif END lookup main" rules
constexpr const char* kLocalRulePref = "100";         // where the local table's rule moves to
constexpr const char* kNobodysMac = "02:00:00:00:de:ad";  // locally administered, unused

std::string mac_of(const std::string& interface) {
  std::ifstream in("/sys/class/net/" + interface + "/address");
  std::string mac;
  in >> mac;
  return mac;
}

}  // namespace

RdmaLink::RdmaLink(const std::string& tag)
    : src_if_(tag + "s"), dst_if_(tag + "d"), src_dev_("rxe" + tag + "s"), dst_dev_("rxe" + tag + "d") {
  if (::geteuid() != 0) {
    error_ = "an rxe pair on veth needs root";
    return;
  }
  if (std::system("ip -V >/dev/null 2>&1") != 0 || std::system("rdma -V >/dev/null 2>&1") != 0) {
    error_ = "iproute2's 'ip' and 'rdma' are needed (apt-get install iproute2)";
    return;
  }
  created_ = true;
  if (!run("ip link add " + src_if_ + " mtu 9000 type veth peer name " + dst_if_ + " mtu 9000") ||
      !run(std::string("ip addr add ") + kSourceAddress + "/24 dev " + src_if_) ||
      !run(std::string("ip addr add ") + kDestinationAddress + "/24 dev " + dst_if_))
    return;
  for (const std::string& end : {src_if_, dst_if_})
    if (!run("sysctl -qw net.ipv4.conf." + end + ".accept_local=1 net.ipv4.conf." + end +
             ".rp_filter=0"))
      return;
  if (!run("sysctl -qw net.ipv4.conf.all.rp_filter=0")) return;
  // The local table's rule at 0 would send every packet between the two local addresses
  // through lo; behind the two oif rules it still serves everything else.
  if (std::system("ip rule show pref 0 | grep -q 'lookup local'") == 0) {
    if (!run(std::string("ip rule add pref ") + kLocalRulePref + " lookup local") ||
        !run("ip rule del pref 0 lookup local"))
      return;
    moved_local_rule_ = true;
  }
  if (!run(std::string("ip rule add pref ") + kRulePrefs[0] + " oif " + src_if_ + " lookup main") ||
      !run(std::string("ip rule add pref ") + kRulePrefs[1] + " oif " + dst_if_ + " lookup main") ||
      !run("ip link set " + src_if_ + " up") || !run("ip link set " + dst_if_ + " up") ||
      !restore())
    return;
  if (!run("rdma link add " + src_dev_ + " type rxe netdev " + src_if_) ||
      !run("rdma link add " + dst_dev_ + " type rxe netdev " + dst_if_))
    error_ += " (the rdma_rxe module: modprobe rdma_rxe)";
}

RdmaLink::~RdmaLink() {
  if (!created_) return;
  auto quiet = [](const std::string& c) { std::system((c + " >/dev/null 2>&1").c_str()); };
  quiet("rdma link delete " + src_dev_);
  quiet("rdma link delete " + dst_dev_);
  quiet("ip link del " + src_if_);  // and with it its peer
  for (const char* pref : kRulePrefs) quiet(std::string("ip rule del pref ") + pref);
  if (moved_local_rule_) {
    quiet("ip rule add pref 0 lookup local");
    quiet(std::string("ip rule del pref ") + kLocalRulePref + " lookup local");
  }
}

bool RdmaLink::cut() { return point_neighbours(kNobodysMac, kNobodysMac); }

bool RdmaLink::restore() { return point_neighbours(mac_of(src_if_), mac_of(dst_if_)); }

bool RdmaLink::point_neighbours(const std::string& to_source_mac,
                                const std::string& to_destination_mac) {
  return run(std::string("ip neigh replace ") + kDestinationAddress + " lladdr " +
             to_destination_mac + " dev " + src_if_ + " nud permanent") &&
         run(std::string("ip neigh replace ") + kSourceAddress + " lladdr " + to_source_mac +
             " dev " + dst_if_ + " nud permanent");
}

bool RdmaLink::run(const std::string& command) { return run_shell_step(command, &error_); }

}  // namespace tern::fault
