// Test support: throwaway x509 credentials made with the openssl CLI (ECDSA P-256, 2 days),
// in directories laid out as QEMU's tls-creds-x509. One call makes a CA and the directories the
// TLS tests need; a test skips (GTEST_SKIP) when openssl is missing.
#pragma once

#include <sys/stat.h>

#include <cstdlib>
#include <fstream>
#include <string>

namespace tern::testing_support {

// Directories (each with ca-cert.pem and the pairs named):
//   good     : the CA, server pair (SAN IP:127.0.0.1, DNS:localhost), client pair CN=tern-source
//   no_client: the CA and the server pair only (a source without a certificate)
//   other_ca : trusts the CA, but its client pair (CN=tern-source) is from another CA
//   stranger : the CA, client pair CN=stranger (signed by the CA; not in authz)
// authz_file lists "CN=tern-source,O=tern" only.
struct TestPki {
  std::string good, no_client, other_ca, stranger, authz_file;
  std::string error;  // why it could not be made ("" on success)
};

namespace detail_pki {

inline bool run(const std::string& cmd, std::string* error) {
  if (std::system((cmd + " >/dev/null 2>&1").c_str()) == 0) return true;
  *error = "command failed: " + cmd;
  return false;
}

inline bool make_ca(const std::string& dir, const std::string& cn, std::string* error) {
  return run("openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2"
             " -subj /CN=" + cn + " -keyout " + dir + "/ca-key.pem -out " + dir + "/ca-cert.pem",
             error);
}

// `role` server|client: role-cert.pem / role-key.pem in `out`, signed by the CA in `ca`.
inline bool make_pair(const std::string& ca, const std::string& out, const std::string& role,
                      const std::string& subject, const std::string& san, std::string* error) {
  std::string cmd = "umask 077; openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256"
                    " -nodes -days 2 -subj '" + subject + "' -CA " + ca + "/ca-cert.pem -CAkey " +
                    ca + "/ca-key.pem -addext basicConstraints=critical,CA:FALSE -keyout " + out +
                    "/" + role + "-key.pem -out " + out + "/" + role + "-cert.pem";
  if (!san.empty()) cmd += " -addext subjectAltName=" + san;
  return run(cmd, error);
}

}  // namespace detail_pki

// Makes the credentials under `root` (an existing, private temporary directory).
inline TestPki make_test_pki(const std::string& root) {
  using namespace detail_pki;
  TestPki p;
  if (std::system("openssl version >/dev/null 2>&1") != 0) {
    p.error = "the openssl command is missing (Debian package openssl)";
    return p;
  }
  p.good = root + "/good";
  p.no_client = root + "/no-client";
  p.other_ca = root + "/other-ca";
  p.stranger = root + "/stranger";
  const std::string ca = root + "/ca", ca2 = root + "/ca2";
  for (const std::string& d : {ca, ca2, p.good, p.no_client, p.other_ca, p.stranger})
    ::mkdir(d.c_str(), 0700);
  const std::string san = "IP:127.0.0.1,DNS:localhost";
  const std::string cp = "cp " + ca + "/ca-cert.pem ";
  const bool ok = make_ca(ca, "tern-test-ca", &p.error) &&
                  make_ca(ca2, "another-ca", &p.error) &&
                  run(cp + p.good + " && " + cp + p.no_client + " && " + cp + p.other_ca +
                          " && " + cp + p.stranger, &p.error) &&
                  make_pair(ca, p.good, "server", "/O=tern/CN=tern-destination", san, &p.error) &&
                  make_pair(ca, p.good, "client", "/O=tern/CN=tern-source", "", &p.error) &&
                  make_pair(ca, p.no_client, "server", "/O=tern/CN=tern-destination", san,
                            &p.error) &&
                  make_pair(ca2, p.other_ca, "client", "/O=tern/CN=tern-source", "", &p.error) &&
                  make_pair(ca, p.stranger, "client", "/O=tern/CN=stranger", "", &p.error);
  if (!ok) return p;
  p.authz_file = root + "/authz.txt";
  std::ofstream(p.authz_file) << "# client subjects this destination accepts\n"
                              << "CN=tern-source,O=tern\n";
  return p;
}

}  // namespace tern::testing_support
