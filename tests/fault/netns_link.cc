#include "tests/fault/netns_link.h"

#include "tests/fault/shell_step.h"

#include <unistd.h>

#include <cstdlib>

namespace tern::fault {

NetnsLink::NetnsLink(const std::string& tag, int mtu)
    : src_ns_("tern-" + tag + "-s"),
      dst_ns_("tern-" + tag + "-d"),
      src_if_(tag + "s"),
      dst_if_(tag + "d") {
  if (::geteuid() != 0) {
    error_ = "network namespaces need root";
    return;
  }
  if (std::system("ip -V >/dev/null 2>&1") != 0) {
    error_ = "iproute2's 'ip' is missing (apt-get install iproute2)";
    return;
  }
  created_ = true;
  const std::string m = std::to_string(mtu);
  if (!run("ip netns add " + src_ns_) || !run("ip netns add " + dst_ns_) ||
      !run("ip link add " + src_if_ + " netns " + src_ns_ + " mtu " + m + " type veth peer name " +
           dst_if_ + " netns " + dst_ns_ + " mtu " + m) ||
      !run("ip -n " + src_ns_ + " addr add " + kSourceAddress + "/24 dev " + src_if_) ||
      !run("ip -n " + dst_ns_ + " addr add " + kDestinationAddress + "/24 dev " + dst_if_) ||
      !run("ip -n " + src_ns_ + " link set lo up") || !run("ip -n " + dst_ns_ + " link set lo up"))
    return;
  restore();
}

NetnsLink::~NetnsLink() {
  if (!created_) return;
  // Deleting a namespace deletes its end of the veth pair, and with it the other end.
  std::system(("ip netns del " + src_ns_ + " >/dev/null 2>&1").c_str());
  std::system(("ip netns del " + dst_ns_ + " >/dev/null 2>&1").c_str());
}

std::vector<std::string> NetnsLink::source_launcher() const {
  return {"ip", "netns", "exec", src_ns_};
}

std::vector<std::string> NetnsLink::destination_launcher() const {
  return {"ip", "netns", "exec", dst_ns_};
}

bool NetnsLink::cut() {
  return run("ip -n " + src_ns_ + " link set " + src_if_ + " down") &&
         run("ip -n " + dst_ns_ + " link set " + dst_if_ + " down");
}

bool NetnsLink::restore() {
  return run("ip -n " + src_ns_ + " link set " + src_if_ + " up") &&
         run("ip -n " + dst_ns_ + " link set " + dst_if_ + " up");
}

bool NetnsLink::run(const std::string& command) { return run_shell_step(command, &error_); }

}  // namespace tern::fault
