// TLS on the tcp transport (docs/security.md): real TLS 1.3 over loopback tcp with throwaway
// x509 credentials. A destination with tls-authz refuses a source without a certificate, one
// from another CA, one whose subject it does not list, and a source without TLS; a source
// refuses a destination whose certificate does not name tls-hostname. After every refusal the
// same destination, still armed, takes the right source, whose channels carry frames.
#include <gtest/gtest.h>

#include <atomic>
#include <cstdlib>
#include <future>

#include "tests/dataplane/tls_pki_fixture.h"
#include "tests/dataplane/transport/harness.h"

namespace tern::testing {
namespace {

class TcpTls : public testing_support::PkiFixture<> {
 protected:
  // A source with `tls` (nullptr: plain tcp) connects to `address`; its result.
  Result<ChannelSet> connect(const std::string& address,
                             std::shared_ptr<const TlsChannelConfig> tls) {
    auto src = create_transport("tcp");
    EXPECT_TRUE(src.is_ok());
    EXPECT_TRUE((*src)->set_tls(std::move(tls)).is_ok());
    auto set = (*src)->connect(address, 3, ++session_, 20s);  // a bound (ASan, load)
    sources_.push_back(std::move(*src));  // channels must not outlive their transport's use
    return set;
  }

  uint64_t session_ = 100;
  std::vector<std::unique_ptr<Transport>> sources_;
};

// What the destination's accept() dropped while `refused` ran, joined: accept() runs until a
// drop naming `expected` came (a drop of an earlier source may come first) or 30 s passed.
std::string drops_during(Transport& dst, const std::string& expected,
                         const std::function<void()>& refused) {
  auto pump = std::async(std::launch::async, [&] {
    std::string why;
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (std::chrono::steady_clock::now() < end && why.find(expected) == std::string::npos) {
      auto acc = dst.accept(100ms);
      EXPECT_FALSE(acc.is_ok()) << "a refused source was handed out";
      for (const Status& s : dst.take_rejected()) why += s.message() + "\n";
    }
    return why;
  });
  refused();
  return pump.get();
}

// Runs the destination's accept() (which drives its side of TLS handshakes) until `done`.
std::future<void> accept_until(Transport& dst, const std::atomic<bool>& done) {
  return std::async(std::launch::async, [&] {
    const auto end = std::chrono::steady_clock::now() + 30s;
    while (!done.load() && std::chrono::steady_clock::now() < end) (void)dst.accept(100ms);
  });
}

TEST_F(TcpTls, OnlyTheRightPeerGetsThrough) {
  auto dst = create_transport("tcp");
  ASSERT_TRUE(dst.is_ok());
  ASSERT_TRUE((*dst)->set_tls(config(pki_.good, "", /*authz=*/true)).is_ok());
  auto uri = (*dst)->listen("127.0.0.1:0");
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  const std::string address = uri->substr(4);

  struct Case {
    const char* what;
    std::string creds;
    const char* source_sees;  // in the source's error, "" when it may only see a closed link
    const char* destination_logs;
  };
  const Case cases[] = {
      {"no client certificate", pki_.no_client, "", "certificate"},
      {"a certificate from another CA", pki_.other_ca, "", "certificate is refused"},
      {"a subject not in tls-authz", pki_.stranger, "", "is not in tls-authz"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.what);
    Result<ChannelSet> set = Status(Code::kInternal, "not run");
    const std::string drops = drops_during(**dst, c.destination_logs, [&] {
      set = connect(address, config(c.creds));
      // TLS 1.3: the client's handshake ends before the server checks its certificate, so the
      // refusal (an alert, then a close) shows on the source's first read.
      if (set) {
        auto& ch = *(*set)[0];
        poll_until_error(ch, 20s);
        EXPECT_FALSE(ch.error().is_ok());
        EXPECT_NE(ch.error().message().find("refuse"), std::string::npos)
            << ch.error().to_string();
      }
    });
    EXPECT_NE(drops.find(c.destination_logs), std::string::npos) << drops;
  }

  // A source without TLS: its hello is not a TLS handshake.
  {
    const std::string drops = drops_during(**dst, "TLS", [&] {
      auto set = connect(address, nullptr);
      if (set) poll_until_error(*(*set)[0], 20s);
    });
    EXPECT_NE(drops.find("TLS"), std::string::npos) << drops;
  }

  // A destination that is not tls-hostname: the source refuses it during connect().
  {
    std::atomic<bool> done{false};
    auto pump = accept_until(**dst, done);
    auto set = connect(address, config(pki_.good, "migration.example"));
    done = true;
    pump.get();
    (void)(*dst)->take_rejected();
    ASSERT_FALSE(set.is_ok());
    EXPECT_EQ(set.status().code(), Code::kDenied) << set.status().to_string();
    EXPECT_NE(set.status().message().find("not for 'migration.example'"), std::string::npos)
        << set.status().to_string();
  }

  // The right source, by IP (the URI's host) and by DNS name (tls-hostname), gets through.
  for (const char* hostname : {"", "localhost"}) {
    SCOPED_TRACE(hostname);
    auto accepted = std::async(std::launch::async, [&] {
      Result<ChannelSet> acc = Status(Code::kTimeout, "not yet");
      const auto end = std::chrono::steady_clock::now() + 30s;  // a bound (ASan, TSan, load)
      while (!acc && std::chrono::steady_clock::now() < end) acc = (*dst)->accept(100ms);
      return acc;
    });
    auto conn = connect(address, config(pki_.good, hostname));
    auto acc = accepted.get();
    ASSERT_TRUE(conn.is_ok()) << conn.status().to_string();
    ASSERT_TRUE(acc.is_ok()) << acc.status().to_string();
    EXPECT_NE((*dst)->encryption().find("TLS 1.3"), std::string::npos) << (*dst)->encryption();
    EXPECT_EQ(sources_.back()->encryption(), (*dst)->encryption());
    std::vector<uint8_t> big(200 << 10, 0x5a);
    TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(big.size()),
                          static_cast<uint32_t>(ControlType::kLayout), 0, 0),
              big.data()};
    auto got = transfer(*(*conn)[0], *(*acc)[0], {f, f}, 30s);
    ASSERT_EQ(got.size(), 2u) << (*acc)[0]->error().to_string();
    EXPECT_EQ(got[1].payload, big);
  }
}

TEST_F(TcpTls, CredentialsAreCheckedWhenLoaded) {
  EXPECT_EQ(TlsCredentials::load(dir_ + "/nosuch").status().code(), Code::kNotFound);
  ASSERT_EQ(std::system(("chmod 644 " + pki_.good + "/server-key.pem").c_str()), 0);
  auto loose = TlsCredentials::load(pki_.good);
  ASSERT_FALSE(loose.is_ok());
  EXPECT_NE(loose.status().message().find("chmod 600"), std::string::npos);
  // No CA: refused; a source-only set (no server pair) loads, without a server context.
  ASSERT_EQ(std::system(("rm " + pki_.other_ca + "/ca-cert.pem").c_str()), 0);
  EXPECT_FALSE(TlsCredentials::load(pki_.other_ca).is_ok());
  auto stranger = TlsCredentials::load(pki_.stranger);
  ASSERT_TRUE(stranger.is_ok()) << stranger.status().to_string();
  EXPECT_EQ((*stranger)->server_context(), nullptr);
  auto c = std::make_shared<TlsChannelConfig>();
  c->creds = *stranger;
  auto dst = create_transport("tcp");
  ASSERT_TRUE(dst.is_ok());
  ASSERT_TRUE((*dst)->set_tls(c).is_ok());
  auto refused = (*dst)->listen("127.0.0.1:0");
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("cannot be a TLS destination"), std::string::npos)
      << refused.status().message();
  // Transports without a byte stream take the credentials too: their handshake travels in
  // frames (toolkit/channel_tls.h, channel_tls_test), and they say what it protects.
  auto loop = create_transport("loopback");
  ASSERT_TRUE(loop.is_ok());
  EXPECT_TRUE((*loop)->set_tls(c).is_ok());
  EXPECT_NE((*loop)->encryption().find("page data in clear"), std::string::npos);
}

}  // namespace
}  // namespace tern::testing
