// Payload checksums on a dpdk link (dpdk_channel.h, ChannelConfig::verify_payload): a
// shared-memory link (net_ring here) whose receiver injects no corruption never asks for them,
// so the sender skips summing fragments; a receiver that injects corruption (or is told
// checksum=always) asks, every data segment arrives summed, and the corrupted ones are dropped
// and resent. Every byte arrives right in all three.
#include <gtest/gtest.h>

#include <algorithm>

#include "dpdk/detail/dpdk_channel.h"
#include "tests/dataplane/transport/harness.h"

namespace tern::testing {
namespace {

bool have_dpdk() {
  auto names = harness_names();
  return std::find(names.begin(), names.end(), "dpdk") != names.end();
}

// 4 MiB in 2 MiB frames over a net_ring pair whose listening (receiving) end has `options`
// added; returns the receiving bulk channel's counters.
dpdk::ChannelStats transfer_with(const std::string& options) {
  Harness h = harness("dpdk");
  const auto base = h.listen_address;
  h.listen_address = [base, options] { return base() + options; };
  Connected c = connect_pair(h);
  Channel& rx = *c.dst[kFirstBulkChannel];
  expect_huge_pages_arrive(*c.src[kFirstBulkChannel], rx, 2 * kHugePageBytes);
  auto* channel = dynamic_cast<dpdk::DpdkChannel*>(&rx);
  EXPECT_NE(channel, nullptr);
  return channel ? channel->stats() : dpdk::ChannelStats{};
}

TEST(DpdkChecksum, SharedMemoryLinkWithACleanReceiverSkipsPayloadSums) {
  if (!have_dpdk()) GTEST_SKIP() << "no dpdk harness here (the reason is printed above)";
  auto s = transfer_with("");
  EXPECT_EQ(s.bad_checksum, 0u);
  // 512 segments of 8 KiB; the first window may still be summed (senders sum until told).
  EXPECT_GT(s.payloads_unchecked, 200u);
}

TEST(DpdkChecksum, ReceiverInjectingCorruptionGetsEveryPayloadSummed) {
  if (!have_dpdk()) GTEST_SKIP() << "no dpdk harness here (the reason is printed above)";
  auto s = transfer_with(",corrupt=0.05,seed=7");
  EXPECT_EQ(s.payloads_unchecked, 0u);
  EXPECT_GT(s.bad_checksum, 0u) << "5% corruption never caught";
}

TEST(DpdkChecksum, ChecksumAlwaysSumsOnASharedMemoryLink) {
  if (!have_dpdk()) GTEST_SKIP() << "no dpdk harness here (the reason is printed above)";
  auto s = transfer_with(",checksum=always");
  EXPECT_EQ(s.payloads_unchecked, 0u);
  EXPECT_EQ(s.bad_checksum, 0u);
}

}  // namespace
}  // namespace tern::testing
