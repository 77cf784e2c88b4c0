// Conformance: the channel handshake (dataplane/toolkit/channel_auth.h) on every transport.
// With the same key on both sides every channel is handed out, and carries frames after it;
// a source with another key refuses the destination (kDenied) and the destination, still
// armed, then takes a source with the right key.
#include <gtest/gtest.h>

#include <future>

#include "tests/dataplane/transport/harness.h"
#include "tests/dataplane/test_peer_key.h"

namespace tern::testing {
namespace {

using testing_support::test_key;

class Auth : public ::testing::TestWithParam<std::string> {
 protected:
  const Harness& h() { return harness(GetParam()); }
};

TEST_P(Auth, SameKeyAuthenticatesEveryChannelAndAWrongKeyIsRefused) {
  auto dst = make_transport(h());
  ASSERT_TRUE(dst.is_ok());
  (*dst)->set_peer_key(test_key('k'));
  auto uri = (*dst)->listen(h().listen_address());
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  const std::string address = uri->substr(uri->find(':') + 1);
  auto accepted = std::async(std::launch::async, [&] {
    const auto deadline = std::chrono::steady_clock::now() + 10s;
    Result<ChannelSet> acc = Status(Code::kTimeout, "not yet");
    while (!acc && std::chrono::steady_clock::now() < deadline) acc = (*dst)->accept(100ms);
    return acc;
  });
  if (h().name != "dpdk") {  // dpdk: one source per port (memif), so no intruder first
    auto wrong = make_transport(h());
    ASSERT_TRUE(wrong.is_ok());
    (*wrong)->set_peer_key(test_key('w'));
    auto refused = (*wrong)->connect(address, 3, 5, 2s);
    EXPECT_EQ(refused.status().code(), Code::kDenied) << refused.status().to_string();
  }
  auto src = make_transport(h());
  ASSERT_TRUE(src.is_ok());
  (*src)->set_peer_key(test_key('k'));
  auto conn = (*src)->connect(address, 3, 6, 5s);
  auto acc = accepted.get();
  ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
  ASSERT_TRUE(acc.is_ok()) << acc.status().to_string();
  ASSERT_EQ(acc->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {  // the handshake's frames are the transport's own
    EXPECT_EQ((*conn)[i]->poll_tx(), 0u);
    EXPECT_EQ((*acc)[i]->poll_tx(), 0u);
  }
  // A control frame larger than the pre-authentication bound now passes on channel 0.
  std::vector<uint8_t> big(64 << 10, 0x42);
  TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(big.size()),
                        static_cast<uint32_t>(ControlType::kLayout), 0, 0),
            big.data()};
  auto got = transfer(*(*conn)[0], *(*acc)[0], {f}, 5s);
  ASSERT_EQ(got.size(), 1u) << (*acc)[0]->error().to_string();
  EXPECT_EQ(got[0].payload.size(), big.size());
}

INSTANTIATE_TEST_SUITE_P(Transports, Auth, ::testing::ValuesIn(harness_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern::testing
