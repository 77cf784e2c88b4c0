// x509 over frames (toolkit/channel_tls.h) on real in-memory channels, both sides in one
// process: the memory-BIO TLS handshake passes with the right credentials and both sides
// export the same channel key (mixed with a pre-shared key when there is one); a source
// without a client certificate, with one from another CA, with a subject not in tls-authz, and
// a destination whose certificate does not name tls-hostname are refused. Then through the
// loopback transport (HelloTransport::connect, SessionGatherer): the right source's channels
// come out keyed alike on both sides; a refused source takes no slot and the right one still
// gets through.
#include "dataplane/toolkit/channel_tls.h"

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>
#include <future>
#include <thread>

#include "dataplane/transport/detail/loopback_channel.h"
#include "dataplane/transport/loopback.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/dataplane/tls_pki_fixture.h"

namespace tern::toolkit {
namespace {

using namespace std::chrono_literals;

class ChannelTls : public testing_support::PkiFixture<> {
 protected:
  struct Outcome {
    Result<bool> source = false, destination = false;
    Result<PeerKey> source_key = Status(Code::kInternal, "none");
    Result<PeerKey> destination_key = Status(Code::kInternal, "none");
  };
  // Runs both sides of one channel's handshake over a loopback pair until both decided.
  Outcome shake(std::shared_ptr<const TlsChannelConfig> src_cfg,
                std::shared_ptr<const TlsChannelConfig> dst_cfg, const PeerKey* psk = nullptr) {
    Outcome o;
    auto pair = detail::make_loopback_pair();
    EXPECT_TRUE(pair.is_ok());
    const HelloPayload hello{0, 3, 0x5e55};
    auto client = FrameTls::client(src_cfg, "", hello);
    auto server = FrameTls::server(dst_cfg, hello);
    EXPECT_TRUE(client.is_ok()) << client.status().to_string();
    EXPECT_TRUE(server.is_ok()) << server.status().to_string();
    if (!client || !server) return o;
    // A bound for a hung handshake only (valgrind or a loaded host take seconds).
    const auto end = Clock::now() + 120s;
    bool src_decided = false, dst_decided = false;
    while ((!src_decided || !dst_decided) && Clock::now() < end) {
      if (!src_decided) {
        o.source = (*client)->poll(*pair->first);
        src_decided = !o.source || *o.source;
      }
      if (!dst_decided) {
        o.destination = (*server)->poll(*pair->second);
        dst_decided = !o.destination || *o.destination;
      }
      // A refused side stops; the other cannot finish (in TLS 1.3 the client is done before
      // the server looked at its certificate).
      if ((src_decided && !o.source) || (dst_decided && !o.destination)) break;
      std::this_thread::sleep_for(100us);
    }
    EXPECT_TRUE(src_decided && dst_decided) << "the handshake did not end within 120 s";
    if (o.source && *o.source) o.source_key = (*client)->channel_key(psk);
    if (o.destination && *o.destination) o.destination_key = (*server)->channel_key(psk);
    return o;
  }

};

TEST_F(ChannelTls, RightPeersAgreeOnTheChannelKey) {
  Outcome o = shake(config(pki_.good, "localhost"), config(pki_.good, "", /*authz=*/true));
  ASSERT_TRUE(o.source.is_ok()) << o.source.status().to_string();
  ASSERT_TRUE(o.destination.is_ok()) << o.destination.status().to_string();
  ASSERT_TRUE(o.source_key.is_ok() && o.destination_key.is_ok());
  EXPECT_EQ(o.source_key->bytes.size(), 32u);
  EXPECT_EQ(o.source_key->bytes, o.destination_key->bytes);

  // Another handshake exports another key; a pre-shared key is mixed in on both sides.
  auto psk = testing_support::test_key('p');
  Outcome again = shake(config(pki_.good, "localhost"), config(pki_.good), psk.get());
  ASSERT_TRUE(again.source_key.is_ok() && again.destination_key.is_ok());
  EXPECT_EQ(again.source_key->bytes, again.destination_key->bytes);
  EXPECT_NE(again.source_key->bytes, o.source_key->bytes);
  EXPECT_NE(again.source_key->bytes, psk->bytes);
}

TEST_F(ChannelTls, WrongCertificatesAreRefused) {
  const auto cases = refused_sources();
  for (const RefusedSource& c : cases) {
    SCOPED_TRACE(c.what);
    Outcome o = shake(config(c.creds, "localhost"), config(pki_.good, "", /*authz=*/true));
    ASSERT_FALSE(o.destination.is_ok()) << "the destination let it through";
    EXPECT_EQ(o.destination.status().code(), Code::kDenied);
    EXPECT_NE(o.destination.status().message().find(c.destination_says), std::string::npos)
        << o.destination.status().to_string();
    EXPECT_FALSE(o.destination_key.is_ok());
  }
  // A destination whose certificate does not name tls-hostname: the source refuses it.
  Outcome o = shake(config(pki_.good, "migration.example"), config(pki_.good));
  ASSERT_FALSE(o.source.is_ok()) << "the source accepted a destination of another name";
  EXPECT_NE(o.source.status().message().find("is not for 'migration.example'"),
            std::string::npos)
      << o.source.status().to_string();
  // No host at all (dpdk's URIs name none) and no tls-hostname: refused before any byte.
  auto no_host = FrameTls::client(config(pki_.good), "", HelloPayload{0, 3, 1});
  ASSERT_FALSE(no_host.is_ok());
  EXPECT_NE(no_host.status().message().find("tls-hostname"), std::string::npos);
}

// A frame of another kind where the handshake is expected (a source without tls-creds) is
// refused, and no handshake frame exceeds the pre-authentication bound.
TEST_F(ChannelTls, ForeignFramesAreRefusedAndFramesStayBounded) {
  auto pair = detail::make_loopback_pair();
  ASSERT_TRUE(pair.is_ok());
  auto server = FrameTls::server(config(pki_.good), HelloPayload{0, 3, 7});
  ASSERT_TRUE(server.is_ok());
  AuthPayload offer{};
  TxFrame f{make_header(FrameType::kControl, 0, 0, sizeof(offer),
                        static_cast<uint32_t>(ControlType::kAuthOffer), 0, 0),
            &offer};
  ASSERT_EQ(pair->first->post(&f, 1), 1u);
  ASSERT_TRUE(pair->first->flush());
  Result<bool> r = false;
  const auto end = Clock::now() + 60s;
  while (r && !*r && Clock::now() < end) r = (*server)->poll(*pair->second);
  ASSERT_FALSE(r.is_ok());
  EXPECT_NE(r.status().message().find("where the TLS handshake was expected"), std::string::npos)
      << r.status().to_string();
}

// The whole path through a transport: HelloTransport::connect on the source, the gatherer on
// the destination, then the key handshake with the exported keys.
TEST_F(ChannelTls, LoopbackTransportOnlyTheRightPeerGetsThrough) {
  LoopbackTransport dst;
  ASSERT_TRUE(dst.set_tls(config(pki_.good, "", /*authz=*/true)).is_ok());
  ASSERT_TRUE(dst.listen("channel-tls-test").is_ok());
  EXPECT_NE(dst.encryption().find("page data in clear"), std::string::npos);

  struct Source {
    std::unique_ptr<LoopbackTransport> transport;  // outlives its channels' use
    Result<ChannelSet> set = Status(Code::kInternal, "not run");
  };
  auto try_source = [](std::shared_ptr<const TlsChannelConfig> cfg, uint64_t session) {
    return std::async(std::launch::async, [cfg, session] {
      Source s;
      s.transport = std::make_unique<LoopbackTransport>();
      EXPECT_TRUE(s.transport->set_tls(cfg).is_ok());
      s.set = s.transport->connect("channel-tls-test", 3, session, 60s);
      return s;
    });
  };

  // A stranger first: refused, nothing handed out.
  auto refused = try_source(config(pki_.stranger, "localhost"), 1);
  std::string drops;
  const auto end = Clock::now() + 120s;
  while (refused.wait_for(10ms) != std::future_status::ready && Clock::now() < end) {
    auto acc = dst.accept(50ms);
    EXPECT_FALSE(acc.is_ok()) << "a refused source was handed out";
    for (const Status& s : dst.take_rejected()) drops += s.message() + "\n";
  }
  Source refused_source = refused.get();
  EXPECT_FALSE(refused_source.set.is_ok()) << "the source did not notice the refusal";
  for (const Status& s : dst.take_rejected()) drops += s.message() + "\n";
  EXPECT_NE(drops.find("is not in tls-authz"), std::string::npos) << drops;

  // Then the right source.
  auto good = try_source(config(pki_.good, "localhost"), 2);
  Result<ChannelSet> accepted = Status(Code::kTimeout, "none");
  const auto until = Clock::now() + 120s;
  while (!accepted && Clock::now() < until) accepted = dst.accept(100ms);
  ASSERT_TRUE(accepted.is_ok()) << accepted.status().to_string();
  Source source = good.get();
  ASSERT_TRUE(source.set.is_ok()) << source.set.status().to_string();
  ASSERT_EQ(source.set->size(), 3u);
  ASSERT_EQ(accepted->size(), 3u);
  for (size_t i = 0; i < 3; ++i) {
    const ChannelKeys* d = (*accepted)[i]->keys();
    const ChannelKeys* s = (*source.set)[i]->keys();
    ASSERT_NE(d, nullptr);
    ASSERT_NE(s, nullptr);
    EXPECT_EQ(std::memcmp(d->recv, s->send, sizeof(d->recv)), 0) << "channel " << i;
    EXPECT_EQ(std::memcmp(d->send, s->recv, sizeof(d->send)), 0) << "channel " << i;
  }
}

}  // namespace
}  // namespace tern::toolkit
