// Conformance, control tier: listen/accept/connect, hellos, address errors, peer close.
// One body per test, run against every transport in harness.h.
#include <gtest/gtest.h>
#include <poll.h>

#include <future>
#include <thread>

#include "tests/dataplane/transport/harness.h"

namespace tern::testing {
namespace {

// These bodies connect before the destination accepts; a TLS client's handshake needs the
// server's answer, so over TLS connect() waits for accept() (tls_test.cc covers TLS refusals).
constexpr const char* kTlsNeedsAccept =
    "tcptls: the source's TLS handshake needs the destination inside accept(), and this body "
    "connects before it accepts";

class Handshake : public ::testing::TestWithParam<std::string> {
 protected:
  const Harness& h() { return harness(GetParam()); }
};

TEST_P(Handshake, ConnectAcceptOrdersChannelsByIndex) {
  Connected c = connect_pair(h(), 5, 7);
  ASSERT_EQ(c.src.size(), 5u);
  ASSERT_EQ(c.dst.size(), 5u);
  for (uint32_t i = 0; i < 5; ++i) {
    EXPECT_EQ(c.src[i]->index(), i);
    EXPECT_EQ(c.dst[i]->index(), i);
    EXPECT_TRUE(c.src[i]->error().is_ok());
    EXPECT_TRUE(c.dst[i]->error().is_ok());
    EXPECT_GE(c.dst[i]->wait_fd(), 0);
    EXPECT_EQ(c.src[i]->tx_pending(), 0u);
    // The hello is the transport's own frame: poll_tx never reports it.
    EXPECT_EQ(c.src[i]->poll_tx(), 0u);
  }
}

TEST_P(Handshake, AcceptsHellosInAnyOrder) {
  std::vector<HelloPayload> hellos = {{2, 3, 9}, {0, 3, 9}, {1, 3, 9}};
  Status s = accept_with_hellos(h(), hellos);
  EXPECT_TRUE(s.is_ok()) << s.to_string();
}

TEST_P(Handshake, AForeignSessionDoesNotJoin) {
  // Channels are gathered by session (dpdk too: its queues go through the SessionGatherer):
  // a hello of another session starts another one.
  Status s = accept_with_hellos(h(), {{0, 3, 1}, {1, 3, 2}, {2, 3, 1}});
  EXPECT_EQ(s.code(), Code::kTimeout) << s.to_string();
  EXPECT_NE(s.message().find("2 of 3"), std::string::npos) << s.message();
  EXPECT_NE(s.message().find("1 of 3"), std::string::npos) << s.message();
}

TEST_P(Handshake, ListenerStaysArmedAfterBadHellos) {
  if (h().name == "dpdk") GTEST_SKIP() << "dpdk: one peer per port (its queues are the channels)";
  if (h().name == "tcptls") GTEST_SKIP() << kTlsNeedsAccept;
  auto dst = make_transport(h());
  auto bad = make_transport(h());
  auto src = make_transport(h());
  ASSERT_TRUE(dst && bad && src);
  auto uri = (*dst)->listen(h().listen_address());
  ASSERT_TRUE(uri);
  const std::string address = parse_uri(*uri)->address;
  auto tiny = connect_with_hellos(**bad, address, {{0, 1, 5}}, 1s);
  auto foreign = connect_with_hellos(**bad, address, {{1, 3, 6}}, 1s);
  auto out_of_range = connect_with_hellos(**bad, address, {{9, 3, 7}}, 1s);
  ASSERT_TRUE(tiny && foreign && out_of_range);
  auto first = (*dst)->accept(300ms);
  EXPECT_EQ(first.status().code(), Code::kTimeout) << first.status().to_string();
  auto rejected = (*dst)->take_rejected();
  EXPECT_EQ(rejected.size(), 2u);
  auto accepted = std::async(std::launch::async, [&] { return (*dst)->accept(5s); });
  auto conn = (*src)->connect(address, 3, 8, 5s);
  ASSERT_TRUE(conn) << conn.status().to_string();
  auto acc = accepted.get();
  ASSERT_TRUE(acc) << acc.status().to_string();
  EXPECT_EQ(acc->size(), 3u);
}

TEST_P(Handshake, ChannelsFarApartAcrossAcceptCallsFormOneSession) {
  if (h().name == "dpdk") GTEST_SKIP() << "dpdk: one peer per port (its queues are the channels)";
  auto dst = make_transport(h());
  auto src = make_transport(h());
  ASSERT_TRUE(dst && src);
  auto uri = (*dst)->listen(h().listen_address());
  ASSERT_TRUE(uri);
  const std::string address = parse_uri(*uri)->address;
  std::vector<ChannelSet> keep;
  std::thread source([&] {
    for (uint32_t i = 0; i < 3; ++i) {
      if (i) std::this_thread::sleep_for(1s);
      auto c = connect_with_hellos(**src, address, {{i, 3, 11}}, 10s);  // a bound (TLS, ASan)
      ASSERT_TRUE(c) << c.status().to_string();
      keep.push_back(std::move(*c));
    }
  });
  Result<ChannelSet> acc = Status(Code::kTimeout, "");
  for (int i = 0; i < 150 && !acc; ++i) acc = (*dst)->accept(200ms);  // as the engine calls it
  source.join();
  ASSERT_TRUE(acc) << acc.status().to_string();
  ASSERT_EQ(acc->size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ((*acc)[i]->index(), i);
}

TEST_P(Handshake, RejectsCountMismatch) {
  Status s = accept_with_hellos(h(), {{0, 3, 1}, {1, 4, 1}, {2, 3, 1}});
  EXPECT_EQ(s.code(), Code::kProtocol) << s.to_string();
  EXPECT_NE(s.message().find("channel_count"), std::string::npos) << s.message();
}

TEST_P(Handshake, RejectsDuplicateAndOutOfRangeIndex) {
  Status dup = accept_with_hellos(h(), {{0, 3, 1}, {0, 3, 1}, {2, 3, 1}});
  EXPECT_EQ(dup.code(), Code::kProtocol) << dup.to_string();
  EXPECT_NE(dup.message().find("channel_index"), std::string::npos) << dup.message();
  Status range = accept_with_hellos(h(), {{5, 3, 1}, {1, 3, 1}, {2, 3, 1}});
  EXPECT_EQ(range.code(), Code::kProtocol) << range.to_string();
  EXPECT_NE(range.message().find("channel_index"), std::string::npos) << range.message();
  Status tiny = accept_with_hellos(h(), {{0, 1, 1}});
  EXPECT_EQ(tiny.code(), Code::kProtocol) << tiny.to_string();
}

TEST_P(Handshake, AcceptTimesOutWithAClearMessage) {
  auto t = make_transport(h());
  ASSERT_TRUE(t);
  ASSERT_TRUE((*t)->listen(h().listen_address()));
  auto r = (*t)->accept(50ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_NE(r.status().message().find("50 ms"), std::string::npos) << r.status().message();
}

TEST_P(Handshake, AcceptTimesOutOnAnIncompleteSession) {
  if (h().name == "tcptls") GTEST_SKIP() << kTlsNeedsAccept;
  auto dst = make_transport(h());
  auto src = make_transport(h());
  ASSERT_TRUE(dst && src);
  auto uri = (*dst)->listen(h().listen_address());
  ASSERT_TRUE(uri);
  auto conn = connect_with_hellos(**src, parse_uri(*uri)->address, {{0, 3, 1}}, 1s);
  ASSERT_TRUE(conn) << conn.status().to_string();
  auto r = (*dst)->accept(100ms);
  ASSERT_FALSE(r);
  EXPECT_EQ(r.status().code(), Code::kTimeout);
  EXPECT_NE(r.status().message().find("1 of 3"), std::string::npos) << r.status().message();
}

TEST_P(Handshake, BadAddressesAreInvalidArguments) {
  auto t = make_transport(h());
  ASSERT_TRUE(t);
  for (const std::string& a : h().bad_addresses) {
    auto r = (*t)->connect(a, 3, 1, 200ms);
    ASSERT_FALSE(r) << a;
    EXPECT_EQ(r.status().code(), Code::kInvalidArgument) << a << ": " << r.status().to_string();
    EXPECT_FALSE(r.status().message().empty());
  }
  auto few = (*t)->connect(h().listen_address(), 2, 1, 200ms);
  EXPECT_EQ(few.status().code(), Code::kInvalidArgument) << few.status().to_string();
}

TEST_P(Handshake, ConnectWithoutListenerFails) {
  auto dst = make_transport(h());
  ASSERT_TRUE(dst);
  std::string address;
  {
    auto uri = (*dst)->listen(h().listen_address());
    ASSERT_TRUE(uri);
    address = parse_uri(*uri)->address;
  }
  dst->reset();  // the listener is gone; its address is now unreachable
  auto src = make_transport(h());
  auto r = (*src)->connect(address, 3, 1, 500ms);
  ASSERT_FALSE(r);
  EXPECT_FALSE(r.status().message().empty());
}

TEST_P(Handshake, PeerCloseIsDetectedAfterPendingFrames) {
  Connected c = connect_pair(h());
  ASSERT_EQ(c.src.size(), 3u);
  Channel& rx = *c.dst[2];
  // Frames sent just before the close still arrive, then the close is reported.
  for (uint32_t i = 0; i < 3; ++i) {
    TxFrame f{make_header(FrameType::kRoundEnd, 0, 0, 0, 0, i, 2), nullptr};
    ASSERT_EQ(c.src[2]->post(&f, 1), 1u);
  }
  ASSERT_TRUE(c.src[2]->flush());
  c.src.clear();
  std::vector<Received> got;
  poll_until_error(rx, 3s, &got);
  ASSERT_EQ(got.size(), 3u);
  for (uint32_t i = 0; i < 3; ++i) EXPECT_EQ(got[i].hdr.round, i);
  EXPECT_FALSE(rx.error().is_ok());
  EXPECT_NE(rx.error().message().find("peer closed channel 2"), std::string::npos)
      << rx.error().to_string();
  RxFrame f;
  EXPECT_EQ(rx.poll_rx(&f, 1), 0u);  // sticky
  EXPECT_FALSE(rx.error().is_ok());
}

TEST_P(Handshake, SenderNoticesReceiverClose) {
  Connected c = connect_pair(h());
  ASSERT_EQ(c.dst.size(), 3u);
  Channel& tx = *c.src[1];
  c.dst.clear();
  bool failed = false;
  for (int i = 0; i < 2000 && !failed; ++i) {
    TxFrame f{make_header(FrameType::kRoundEnd, 0, 0, 0, 0, 0, 1), nullptr};
    tx.post(&f, 1);
    failed = !tx.flush();
    RxFrame r;
    tx.poll_rx(&r, 1);
    failed |= !tx.error().is_ok();
    if (!failed) std::this_thread::sleep_for(1ms);
  }
  ASSERT_TRUE(failed);
  EXPECT_NE(tx.error().message().find("peer closed channel 1"), std::string::npos)
      << tx.error().to_string();
}

TEST_P(Handshake, WaitFdWakesASleepingReceiver) {
  Connected c = connect_pair(h());
  ASSERT_EQ(c.src.size(), 3u);
  Channel& rx = *c.dst[1];
  RxFrame f;
  ASSERT_EQ(rx.poll_rx(&f, 1), 0u);  // idle: the receiver may now sleep
  std::thread sender([&] {
    std::this_thread::sleep_for(30ms);
    TxFrame t{make_header(FrameType::kRequest, 0, 0, 0, 0, 0, 1), nullptr};
    ASSERT_EQ(c.src[1]->post(&t, 1), 1u);
    ASSERT_TRUE(c.src[1]->flush());
  });
  pollfd pfd{rx.wait_fd(), POLLIN, 0};
  int r = ::poll(&pfd, 1, 30000);  // 1: woken by the frame, not by the bound
  sender.join();
  EXPECT_EQ(r, 1);
  size_t n = 0;
  for (int i = 0; i < 100 && n == 0; ++i) {
    n = rx.poll_rx(&f, 1);
    if (!n) std::this_thread::sleep_for(1ms);
  }
  ASSERT_EQ(n, 1u);
  EXPECT_EQ(f.hdr.type, static_cast<uint8_t>(FrameType::kRequest));
}

INSTANTIATE_TEST_SUITE_P(Transports, Handshake, ::testing::ValuesIn(harness_names()),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern::testing
