// Test support: a GoogleTest fixture with throwaway x509 credentials (test_tls_certs.h) in a
// private temporary directory, removed afterwards, and TlsChannelConfig made from them. The
// test skips (GTEST_SKIP) when the credentials cannot be made. Base: ::testing::Test, or
// ::testing::TestWithParam<T> for parameterized tests.
#pragma once

#include <gtest/gtest.h>
#include <stdlib.h>

#include <cstdlib>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/tls_credentials.h"
#include "tests/dataplane/test_tls_certs.h"

namespace tern::testing_support {

template <typename Base = ::testing::Test>
class PkiFixture : public Base {
 protected:
  void SetUp() override {
    char dir[] = "/tmp/tern-pki-test-XXXXXX";
    ASSERT_NE(::mkdtemp(dir), nullptr);
    dir_ = dir;
    pki_ = make_test_pki(dir_);
    if (!pki_.error.empty()) GTEST_SKIP() << pki_.error;
  }
  void TearDown() override {
    if (!dir_.empty()) std::system(("rm -rf " + dir_).c_str());
  }

  // The credentials in `creds_dir` checked against `hostname` (source), with the allow-list
  // pki_.authz_file when `authz` (destination).
  std::shared_ptr<const TlsChannelConfig> config(const std::string& creds_dir,
                                                 const std::string& hostname = "",
                                                 bool authz = false) {
    auto creds = TlsCredentials::load(creds_dir);
    EXPECT_TRUE(creds.is_ok()) << creds.status().to_string();
    auto c = std::make_shared<TlsChannelConfig>();
    if (creds) c->creds = *creds;
    c->hostname = hostname;
    if (authz) {
      auto a = load_tls_authz(pki_.authz_file);
      EXPECT_TRUE(a.is_ok()) << a.status().to_string();
      if (a) c->authz = *a;
    }
    return c;
  }

  // The sources a destination with pki_.good and tls-authz refuses, and what its refusal says.
  struct RefusedSource {
    const char* what;
    std::string creds;
    const char* destination_says;
  };
  std::vector<RefusedSource> refused_sources() const {
    return {{"no client certificate", pki_.no_client, "certificate"},
            {"a certificate from another CA", pki_.other_ca, "certificate is refused"},
            {"a subject not in tls-authz", pki_.stranger, "is not in tls-authz"}};
  }

  std::string dir_;
  TestPki pki_;
};

}  // namespace tern::testing_support
