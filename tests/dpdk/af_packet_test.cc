// The dpdk transport over af_packet: both ends in this process, each on one end of a veth pair
// in a network namespace of the test's own (unshare(CLONE_NEWNET): nothing outside the process
// sees it, and it goes with the process). af_packet spreads frames over its queues by flow
// hash, so this is the path where the port sorts segments to their channels (Port::steers).
// Skips, saying why, without root, without `ip`, or where DPDK cannot start.
#include <gtest/gtest.h>
#include <sched.h>

#include <cstdlib>
#include <cstring>
#include <future>

#include "dpdk/dpdk_transport.h"
#include "tests/dataplane/transport/harness.h"

namespace tern::testing {
namespace {

// A private network namespace with a veth pair tA <-> tB (MTU mtu, up); "" or why not.
std::string make_veth(int mtu) {
  static bool in_private_ns = false;
  if (!in_private_ns) {
    if (::unshare(CLONE_NEWNET) != 0)
      return std::string("unshare(CLONE_NEWNET): ") + std::strerror(errno) + " (needs root)";
    in_private_ns = true;
  }
  std::system("ip link del tA >/dev/null 2>&1");
  const std::string m = std::to_string(mtu);
  const std::string cmd = "ip link add tA type veth peer name tB && ip link set tA mtu " + m +
                          " up && ip link set tB mtu " + m + " up";
  if (std::system(cmd.c_str()) != 0) return "could not create a veth pair with `ip`";
  return "";
}

TEST(DpdkAfPacket, PagesCrossAVethPairIntact) {
  if (Status s = dpdk_can_start(); !s.is_ok()) GTEST_SKIP() << s.to_string();
  if (std::string why = make_veth(9000); !why.empty()) GTEST_SKIP() << why;
  DpdkTransport dst_t, src_t;
  auto uri = dst_t.listen("net_af_packet0,iface=tA");
  ASSERT_TRUE(uri) << uri.status().to_string();
  auto accepted = std::async(std::launch::async, [&] { return dst_t.accept(10s); });
  auto src = src_t.connect("net_af_packet0,iface=tB", 3, 1, 10s);
  auto dst = accepted.get();
  ASSERT_TRUE(src) << src.status().to_string();
  ASSERT_TRUE(dst) << dst.status().to_string();
  expect_huge_pages_arrive(*(*src)[kFirstBulkChannel], *(*dst)[kFirstBulkChannel],
                           2 * kHugePageBytes);
}

TEST(DpdkAfPacket, AnInterfaceTooSmallForASegmentIsRefusedWithTheFix) {
  if (Status s = dpdk_can_start(); !s.is_ok()) GTEST_SKIP() << s.to_string();
  if (std::string why = make_veth(1500); !why.empty()) GTEST_SKIP() << why;
  DpdkTransport t;
  auto uri = t.listen("net_af_packet0,iface=tA");
  ASSERT_FALSE(uri);
  EXPECT_EQ(uri.status().code(), Code::kInvalidArgument);
  EXPECT_NE(uri.status().message().find("ip link set tA mtu 9000"), std::string::npos)
      << uri.status().to_string();
}

}  // namespace
}  // namespace tern::testing
