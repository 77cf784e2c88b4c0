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

// The address a source on tB dials for a destination listening on tA: the URI listen()
// returned (with the destination's endpoint id, `ep=`), its own end of the link.
std::string source_address(const std::string& uri) {
  std::string a = uri.rfind("dpdk:", 0) == 0 ? uri.substr(5) : uri;
  const size_t at = a.find("iface=tA");
  if (at != std::string::npos) a.replace(at, 8, "iface=tB");
  return a;
}

// Two destinations listen on one interface (tA): every packet socket there sees every frame.
// A source dials the second one while the first stays armed (the fault matrix's retry to a
// fresh destination): the first must take nothing of that session (its accept times out with
// no channel claimed) and the second must get every page intact.
TEST(DpdkAfPacket, AnotherListenerOnTheInterfaceTakesNothingOfTheSession) {
  if (Status s = dpdk_can_start(); !s.is_ok()) GTEST_SKIP() << s.to_string();
  if (std::string why = make_veth(9000); !why.empty()) GTEST_SKIP() << why;
  DpdkTransport old_t, dst_t, src_t;
  auto old_uri = old_t.listen("net_af_packet0,iface=tA");
  ASSERT_TRUE(old_uri) << old_uri.status().to_string();
  auto uri = dst_t.listen("net_af_packet0,iface=tA");
  ASSERT_TRUE(uri) << uri.status().to_string();
  auto old_accepted = std::async(std::launch::async, [&] { return old_t.accept(6s); });
  auto accepted = std::async(std::launch::async, [&] { return dst_t.accept(10s); });
  auto src = src_t.connect(source_address(*uri), 3, 1, 10s);
  auto dst = accepted.get();
  ASSERT_TRUE(src) << src.status().to_string();
  ASSERT_TRUE(dst) << dst.status().to_string();
  expect_huge_pages_arrive(*(*src)[kFirstBulkChannel], *(*dst)[kFirstBulkChannel],
                           4 * kHugePageBytes);
  auto old = old_accepted.get();
  EXPECT_FALSE(old) << "the other listener accepted a session meant for its neighbour";
  if (!old) {
    EXPECT_EQ(old.status().code(), Code::kTimeout) << old.status().to_string();
  }
}

// Two whole sessions on one veth pair at once: both destinations on tA, both sources on tB.
// Each side's frames reach only its own peer, both ways, so both streams arrive intact.
TEST(DpdkAfPacket, TwoSessionsOnOneInterfaceKeepTheirFramesApart) {
  if (Status s = dpdk_can_start(); !s.is_ok()) GTEST_SKIP() << s.to_string();
  if (std::string why = make_veth(9000); !why.empty()) GTEST_SKIP() << why;
  DpdkTransport d1_t, d2_t, s1_t, s2_t;
  auto u1 = d1_t.listen("net_af_packet0,iface=tA");
  auto u2 = d2_t.listen("net_af_packet0,iface=tA");
  ASSERT_TRUE(u1) << u1.status().to_string();
  ASSERT_TRUE(u2) << u2.status().to_string();
  auto a1 = std::async(std::launch::async, [&] { return d1_t.accept(10s); });
  auto s1 = s1_t.connect(source_address(*u1), 3, 1, 10s);
  auto d1 = a1.get();
  ASSERT_TRUE(s1) << s1.status().to_string();
  ASSERT_TRUE(d1) << d1.status().to_string();
  auto a2 = std::async(std::launch::async, [&] { return d2_t.accept(10s); });
  auto s2 = s2_t.connect(source_address(*u2), 3, 2, 10s);
  auto d2 = a2.get();
  ASSERT_TRUE(s2) << s2.status().to_string();
  ASSERT_TRUE(d2) << d2.status().to_string();
  auto other = std::async(std::launch::async, [&] {
    expect_huge_pages_arrive(*(*s1)[kFirstBulkChannel], *(*d1)[kFirstBulkChannel],
                             4 * kHugePageBytes);
  });
  expect_huge_pages_arrive(*(*s2)[kFirstBulkChannel], *(*d2)[kFirstBulkChannel],
                           4 * kHugePageBytes);
  other.get();
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
