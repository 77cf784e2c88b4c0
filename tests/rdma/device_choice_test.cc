// Device choice (rdma/device_choice.h) as logic, without a device: a named device or a clear
// error listing the available ones; by default the nearest by the given distance, ties to the
// first listed. The real devices are named in the rdma suite (rdma_device_test.cc, in the VM).
#include "rdma/device_choice.h"

#include <gtest/gtest.h>

#include <map>

#include "rdma/rdma_transport.h"

namespace tern::rdma {
namespace {

const std::vector<DeviceInfo> kDevices = {
    {"mlx5_0", {"10.0.0.1"}}, {"mlx5_1", {"10.1.0.1", "10.1.0.2"}}, {"rxe0", {}}};

std::function<Distance(const std::string&)> table(std::map<std::string, Distance> m) {
  return [m](const std::string& n) {
    auto it = m.find(n);
    return it == m.end() ? kUnknown : it->second;
  };
}

TEST(DeviceChoice, NamedDeviceIsUsedWhateverItsDistance) {
  auto c = choose_device(kDevices, "mlx5_1", table({{"mlx5_0", kNear}, {"mlx5_1", kFar}}));
  ASSERT_TRUE(c.is_ok()) << c.status().to_string();
  EXPECT_EQ(c->name, "mlx5_1");
  EXPECT_EQ(c->ipv4, "10.1.0.1");
  EXPECT_EQ(c->why, "named");
}

TEST(DeviceChoice, UnknownNameFailsNamingTheAvailableDevices) {
  auto c = choose_device(kDevices, "mlx4_7", table({}));
  ASSERT_FALSE(c.is_ok());
  EXPECT_EQ(c.status().code(), Code::kNotFound);
  const std::string m = c.status().message();
  EXPECT_NE(m.find("'mlx4_7' does not exist"), std::string::npos) << m;
  EXPECT_NE(m.find("mlx5_0, mlx5_1, rxe0"), std::string::npos) << m;
  auto none = choose_device({}, "rxe0", table({}));
  ASSERT_FALSE(none.is_ok());
  EXPECT_NE(none.status().message().find("devices here: none"), std::string::npos);
}

TEST(DeviceChoice, DefaultIsTheNearestThenTheFirstListed) {
  auto c = choose_device(kDevices, "", table({{"mlx5_0", kFar}, {"mlx5_1", kNear}}));
  ASSERT_TRUE(c.is_ok());
  EXPECT_EQ(c->name, "mlx5_1");
  EXPECT_NE(c->why.find("nearest"), std::string::npos);
  auto tie = choose_device(kDevices, "", table({{"mlx5_0", kNear}, {"mlx5_1", kNear}}));
  EXPECT_EQ(tie->name, "mlx5_0");
  auto unplaced = choose_device(kDevices, "", table({}));  // rxe: hwloc places none
  EXPECT_EQ(unplaced->name, "mlx5_0");
  auto only = choose_device({{"rxe0", {"10.77.0.1"}}}, "", table({}));
  EXPECT_EQ(only->name, "rxe0");
  EXPECT_EQ(only->why, "the only device");
  EXPECT_FALSE(choose_device({}, "", table({})).is_ok());
}

TEST(DeviceChoice, AddressOptionsAreCheckedBeforeAnyDevice) {
  RdmaTransport t;
  auto bad = t.listen("10.77.0.1:0,devcie=rxe0");
  ASSERT_FALSE(bad.is_ok());
  EXPECT_EQ(bad.status().code(), Code::kInvalidArgument);
  EXPECT_NE(bad.status().message().find("'devcie=rxe0'"), std::string::npos)
      << bad.status().message();
  auto empty = t.listen("10.77.0.1:0,device=");
  ASSERT_FALSE(empty.is_ok());
  EXPECT_EQ(empty.status().code(), Code::kInvalidArgument);
}

// Transport::device_pci for rdma: the PCI address behind /sys/class/infiniband/DEV/device,
// which the engine pins its workers near; rxe and other virtual devices have none.
TEST(DevicePci, IsTheLinksLastComponentWhenItIsAPciAddress) {
  EXPECT_EQ(pci_address_from_link("../../../0000:3b:00.1"), "0000:3b:00.1");
  EXPECT_EQ(pci_address_from_link("../../../devices/pci0000:00/0000:00:03.0"), "0000:00:03.0");
  EXPECT_EQ(pci_address_from_link("0000:af:00.0"), "0000:af:00.0");
  EXPECT_EQ(pci_address_from_link("../../../devices/virtual/net/eth0"), "");
  EXPECT_EQ(pci_address_from_link("../../../0000:3b:00.8"), "");  // function is 0-7
  EXPECT_EQ(pci_address_from_link("../../../0000:3b:00.10"), "");
  EXPECT_EQ(pci_address_from_link(""), "");
  EXPECT_EQ(device_pci_address("no-such-device"), "");
  EXPECT_EQ(device_pci_address("../../etc"), "");
}

}  // namespace
}  // namespace tern::rdma
