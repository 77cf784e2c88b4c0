// Only the right peer with x509 credentials, end to end between two engines, on every
// transport of this binary (loopback and tcp; rdma in the rdma suite's VM): throwaway
// credentials (tests/dataplane/test_tls_certs.h), QEMU's tls-creds / tls-hostname / tls-authz.
// Sources without a client certificate, with one from another CA or with a subject not in
// tls-authz are refused, a destination whose certificate does not name tls-hostname is refused
// by the source; no refused source starts a migration on the destination, each keeps its guest
// running; then the right source migrates with 0 mismatches. With a pre-shared key as well,
// a source with the right certificate but another key is refused too. On loopback and rdma the
// TLS handshake travels in frames (toolkit/channel_tls.h); on tcp it is tcp's own TLS.
#include <gtest/gtest.h>

#include <cstdlib>
#include <iostream>

#include "dataplane/tls_credentials.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/dataplane/tls_pki_fixture.h"
#include "tests/integration/trust_helpers.h"

namespace tern {
namespace {

using namespace testing_support;
using namespace std::chrono_literals;

class X509Trust : public PkiFixture<::testing::TestWithParam<std::string>> {
 protected:
  // Parameters with the credentials in `creds_dir` as "tls0" (and tls-authz as "authz0").
  MigrationParameters x509(const std::string& creds_dir, bool authz = false,
                           const std::string& hostname = "localhost",
                           std::shared_ptr<const PeerKey> key = nullptr) {
    MigrationParameters p = with_key(std::move(key));
    auto c = config(creds_dir, hostname, authz);
    auto catalog = std::make_shared<TlsCatalog>();
    catalog->creds["tls0"] = c->creds;
    if (authz) catalog->authz["authz0"] = c->authz;
    p.tls = {"tls0", hostname, authz ? "authz0" : ""};
    p.tls_catalog = catalog;
    return p;
  }

  // A source with `params` migrates to `uri`: it fails, its guest keeps running, it never
  // switched over, and the destination `in` never started a migration. The source's error.
  std::string refused(IncomingMigration& in, const std::string& uri,
                      const MigrationParameters& params) {
    auto guest = running_thread_guest(16ull << 20);
    EXPECT_TRUE(guest);
    if (!guest) return "";
    StatusTrail trail;
    OutgoingMigration out(*guest, {}, params);
    trail.attach(out);
    EXPECT_TRUE(out.start(uri).is_ok());
    EXPECT_EQ(out.wait(30s), MigrationStatus::kFailed);
    EXPECT_TRUE(guest->running());
    EXPECT_EQ(out.info().stats.transferred, 0u);
    trail.expect_never_switched_over();
    EXPECT_EQ(in.info().status, MigrationStatus::kNone) << "a refused source started a migration";
    std::cout << "[ refused  ] source: " << out.info().error << "\n";
    return out.info().error;
  }

};

TEST_P(X509Trust, WrongCertificatesAreRefusedThenTheRightPeerMigrates) {
  Notices notices;
  IncomingMigration in(make_thread_guest_factory(), x509(pki_.good, /*authz=*/true));
  notices.attach(in);
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();

  const auto cases = refused_sources();
  for (const RefusedSource& c : cases) {
    SCOPED_TRACE(c.what);
    const std::string error = refused(in, *uri, x509(c.creds));
    EXPECT_FALSE(error.empty());
  }
  // The destination's log names each refusal (a drop is logged as its accept loop sees it).
  const auto end = std::chrono::steady_clock::now() + 10s;
  while (notices.all().find("is not in tls-authz") == std::string::npos &&
         std::chrono::steady_clock::now() < end)
    std::this_thread::sleep_for(50ms);
  for (const RefusedSource& c : cases)
    EXPECT_NE(notices.all().find(c.destination_says), std::string::npos) << notices.all();

  // The right source refuses a destination whose certificate does not carry tls-hostname.
  const std::string wrong_name = refused(in, *uri, x509(pki_.good, false, "migration.example"));
  EXPECT_NE(wrong_name.find("is not for 'migration.example'"), std::string::npos) << wrong_name;

  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, x509(pki_.good));
  EXPECT_FALSE(in.info().authenticated);  // no pre-shared key: "tls"
  EXPECT_FALSE(in.info().encryption.empty());
  if (GetParam() != "tcp") {
    EXPECT_NE(in.info().encryption.find("page data in clear"), std::string::npos)
        << in.info().encryption;
  }
}

TEST_P(X509Trust, WithAKeyTooBothMustMatch) {
  IncomingMigration in(make_thread_guest_factory(),
                       x509(pki_.good, true, "localhost", test_key('k')));
  auto uri = in.start(listen_uri(GetParam()));
  ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
  const std::string error = refused(in, *uri, x509(pki_.good, false, "localhost", test_key('w')));
  EXPECT_NE(error.find("cannot prove it knows the key"), std::string::npos) << error;
  auto guest = running_thread_guest(32ull << 20);
  ASSERT_TRUE(guest);
  expect_completes_clean(*guest, in, *uri, x509(pki_.good, false, "localhost", test_key('k')));
  EXPECT_TRUE(in.info().authenticated);  // "tls+psk"
}

INSTANTIATE_TEST_SUITE_P(Transports, X509Trust, ::testing::Values(TERN_IT_TRANSPORTS),
                         [](const auto& info) { return info.param; });

}  // namespace
}  // namespace tern
