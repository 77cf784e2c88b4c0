// memif teardown against DPDK 22.11's races (docs/dpdk.md, *memif teardown*): the accept-queue
// probe behind parking (unix_listener.h), a memif client parked while its server has not
// accepted it and closed once it has (device_close.h), and memif's interrupt callbacks running
// under the burst lock (intr_guard.h). The whole faults are fault cases (tests/fault:
// dpdk_setup_destination_stop, dpdk_precopy_destination_kill, dpdk_switchover_*_kill).
#include <gtest/gtest.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <chrono>
#include <cstddef>
#include <cstring>
#include <string>
#include <thread>

#include "dpdk/detail/address.h"
#include "dpdk/detail/device_close.h"
#include "dpdk/detail/eal.h"
#include "dpdk/detail/intr_guard.h"
#include "dpdk/detail/port.h"
#include "dpdk/detail/unix_listener.h"

namespace tern::dpdk {
namespace {

// A plain listening unix socket on an abstract name (a memif server that never accepts).
struct RawListener {
  explicit RawListener(const std::string& name) {
    fd = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    sockaddr_un un{};
    un.sun_family = AF_UNIX;
    std::memcpy(un.sun_path + 1, name.data(), name.size());
    len = static_cast<socklen_t>(offsetof(sockaddr_un, sun_path) + 1 + name.size());
    addr = un;
    EXPECT_EQ(::bind(fd, reinterpret_cast<sockaddr*>(&un), len), 0);
    EXPECT_EQ(::listen(fd, 4), 0);
  }
  ~RawListener() { ::close(fd); }
  int dial() const {
    const int c = ::socket(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0);
    EXPECT_EQ(::connect(c, reinterpret_cast<const sockaddr*>(&addr), len), 0);
    return c;
  }
  int fd;
  sockaddr_un addr;
  socklen_t len;
};

std::string unique(const char* what) {
  return std::string("tern-teardown-") + what + "-" + std::to_string(::getpid());
}

TEST(UnixAcceptQueue, CountsConnectionsNotYetAccepted) {
  const std::string name = unique("probe");
  EXPECT_EQ(unix_accept_queue(name), -1) << "nothing listens yet";
  RawListener l(name);
  EXPECT_EQ(unix_accept_queue(name), 0);
  const int c = l.dial();
  EXPECT_EQ(unix_accept_queue(name), 1);
  ::close(c);
  EXPECT_EQ(unix_accept_queue(name), 1) << "a closed client stays queued until accepted";
  const int a = ::accept(l.fd, nullptr, nullptr);
  EXPECT_GE(a, 0);
  EXPECT_EQ(unix_accept_queue(name), 0);
  ::close(a);
}

bool dpdk_starts(std::string& why) {
  const Status& s = eal_start();
  why = s.message();
  return s.is_ok();
}

TEST(MemifTeardown, AClientItsServerHasNotAcceptedIsParkedUntilItIs) {
  std::string why;
  if (!dpdk_starts(why)) GTEST_SKIP() << "DPDK cannot start here: " << why;
  const std::string name = unique("park");
  RawListener server(name);  // accepts only when told
  auto a = parse_address("net_memif0,socket=" + name + ",queues=3");
  ASSERT_TRUE(a) << a.status().message();
  const size_t before = parked_port_count();
  {
    auto client = Port::open(*a, false);
    ASSERT_TRUE(client) << client.status().message();
    EXPECT_EQ(unix_accept_queue(name), 1);
  }
  EXPECT_EQ(parked_port_count(), before + 1) << "closed while its server could still accept it";
  const int accepted = ::accept(server.fd, nullptr, nullptr);
  ASSERT_GE(accepted, 0);
  close_parked_ports();
  EXPECT_EQ(parked_port_count(), before);
  ::close(accepted);
}

TEST(MemifTeardown, AClientNobodyWillAcceptIsClosedAtOnce) {
  std::string why;
  if (!dpdk_starts(why)) GTEST_SKIP() << "DPDK cannot start here: " << why;
  const std::string name = unique("gone");
  auto a = parse_address("net_memif0,socket=" + name + ",queues=3");
  ASSERT_TRUE(a) << a.status().message();
  const size_t before = parked_port_count();
  {
    RawListener server(name);
    auto client = Port::open(*a, false);
    ASSERT_TRUE(client) << client.status().message();
    const int accepted = ::accept(server.fd, nullptr, nullptr);  // then the server goes
    ASSERT_GE(accepted, 0);
    ::close(accepted);
  }
  EXPECT_EQ(parked_port_count(), before);
}

TEST(MemifTeardown, AClientWithNoServerSaysSoNotOperationNotPermitted) {
  std::string why;
  if (!dpdk_starts(why)) GTEST_SKIP() << "DPDK cannot start here: " << why;
  const std::string name = unique("nobody");
  auto a = parse_address("net_memif0,socket=" + name + ",queues=3");
  ASSERT_TRUE(a) << a.status().message();
  auto client = Port::open(*a, false);  // the PMD's start fails with -1 (EPERM)
  ASSERT_FALSE(client);
  const std::string m = client.status().message();
  EXPECT_NE(m.find("cannot connect to the memif server on " + name), std::string::npos) << m;
  EXPECT_NE(m.find("Connection refused"), std::string::npos) << m;
  EXPECT_EQ(m.find("Operation not permitted"), std::string::npos) << m;
}

TEST(MemifTeardown, MemifInterruptCallbacksRunUnderTheBurstLock) {
  std::string why;
  if (!dpdk_starts(why)) GTEST_SKIP() << "DPDK cannot start here: " << why;
  const uint64_t before = guarded_callbacks_run();
  auto a = parse_address("net_memif0,socket=" + unique("guard") + ",queues=3");
  ASSERT_TRUE(a) << a.status().message();
  auto server = Port::open(*a, true);
  ASSERT_TRUE(server) << server.status().message();
  auto b = parse_address(a->peer_address("client"));
  ASSERT_TRUE(b) << b.status().message();
  auto client = Port::open(*b, false);
  ASSERT_TRUE(client) << client.status().message();
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (!((*client)->link_up() && (*server)->link_up()) &&
         std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ASSERT_TRUE((*client)->link_up() && (*server)->link_up()) << "no memif link in 10 s";
  // The handshake ran memif's control callbacks on the interrupt thread, each through
  // tern's wrapper: the PMD plugin bound to the interposed rte_intr_callback_register.
  EXPECT_GT(guarded_callbacks_run(), before);
}

}  // namespace
}  // namespace tern::dpdk
