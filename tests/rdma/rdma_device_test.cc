// Device choice on real devices (the soft-RoCE VM's rxe0): a URI may name the device, a wrong
// name fails with a message listing the devices, TERN_RDMA_DEVICE names it for a whole process.
#include <gtest/gtest.h>

#include <cstdlib>
#include <future>

#include "rdma/rdma_transport.h"
#include "rdma/verbs_shim.h"

namespace tern {
namespace {

using namespace std::chrono_literals;

std::string rdma_ip() {
  const char* ip = std::getenv("TERN_RDMA_IP");
  return ip && *ip ? ip : "127.0.0.1";
}

std::string first_device() {
  auto devices = rdma::list_devices();
  return devices.empty() ? "" : devices.front().name;
}

// Listens with `suffix` after HOST:PORT, connects with `connect_suffix`, and checks that one
// session (control, urgent, one bulk channel) comes up.
void connect_through(const std::string& listen_host, const std::string& suffix,
                     const std::string& connect_suffix) {
  RdmaTransport dst, src;
  auto uri = dst.listen(listen_host + ":0" + suffix);
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  const std::string address = uri->substr(5) + connect_suffix;  // after "rdma:"
  auto accepted = std::async(std::launch::async, [&] { return dst.accept(20s); });
  auto chans = src.connect(address, 3, 7, 20s);
  ASSERT_TRUE(chans.is_ok()) << chans.status().to_string();
  auto got = accepted.get();
  ASSERT_TRUE(got.is_ok()) << got.status().to_string();
  EXPECT_EQ(got->size(), 3u);
}

TEST(RdmaDevice, ListsDevicesWithTheirAddresses) {
  auto devices = rdma::list_devices();
  ASSERT_FALSE(devices.empty());
  for (const auto& d : devices) {
    std::string ips;
    for (const auto& ip : d.ipv4) ips += " " + ip;
    std::printf("[ device   ] %s:%s\n", d.name.c_str(), ips.c_str());
  }
}

TEST(RdmaDevice, NamedDeviceConnects) {
  const std::string dev = first_device();
  connect_through(rdma_ip(), ",device=" + dev, ",device=" + dev);
}

TEST(RdmaDevice, WildcardListenOnANamedDeviceUsesItsAddress) {
  const std::string dev = first_device();
  RdmaTransport dst;
  auto uri = dst.listen("0.0.0.0:0,device=" + dev);
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  EXPECT_EQ(uri->find("rdma:0.0.0.0"), std::string::npos) << *uri;
  std::printf("[ listen   ] %s on %s\n", uri->c_str(), dev.c_str());
}

TEST(RdmaDevice, WrongNameFailsListingTheDevices) {
  const std::string dev = first_device();
  RdmaTransport dst, src;
  auto l = dst.listen(rdma_ip() + ":0,device=nosuch9");
  ASSERT_FALSE(l.is_ok());
  EXPECT_EQ(l.status().code(), Code::kNotFound);
  EXPECT_NE(l.status().message().find("'nosuch9' does not exist"), std::string::npos)
      << l.status().message();
  EXPECT_NE(l.status().message().find(dev), std::string::npos) << l.status().message();
  auto c = src.connect(rdma_ip() + ":4791,device=nosuch9", 3, 7, 2s);
  ASSERT_FALSE(c.is_ok());
  EXPECT_NE(c.status().message().find("'nosuch9' does not exist"), std::string::npos)
      << c.status().message();
  std::printf("[ message  ] %s\n", l.status().message().c_str());
}

TEST(RdmaDevice, EnvironmentNamesTheDeviceForAProcess) {
  ::setenv("TERN_RDMA_DEVICE", "nosuch9", 1);
  RdmaTransport dst;
  auto l = dst.listen(rdma_ip() + ":0");
  ::unsetenv("TERN_RDMA_DEVICE");
  ASSERT_FALSE(l.is_ok());
  EXPECT_NE(l.status().message().find("nosuch9"), std::string::npos);
  ::setenv("TERN_RDMA_DEVICE", first_device().c_str(), 1);
  connect_through(rdma_ip(), "", "");
  ::unsetenv("TERN_RDMA_DEVICE");
}

}  // namespace
}  // namespace tern
