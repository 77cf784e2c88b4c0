// x509 credentials for TLS on the migration channels (tcp; docs/security.md), laid out as
// QEMU's tls-creds-x509 directory: ca-cert.pem, server-cert.pem + server-key.pem (a destination
// needs them), client-cert.pem + client-key.pem (a source presents them; a destination demands
// a client certificate signed by the CA). TLS 1.3 only, OpenSSL.
//
// Threads: immutable once loaded; shared read-only (shared_ptr<const ...>). The OpenSSL
// contexts inside are safe to make connections from on any thread.
#pragma once

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/status.h"

struct ssl_ctx_st;  // OpenSSL's SSL_CTX, kept out of this header

namespace tern {

class TlsCredentials {
 public:
  ~TlsCredentials();
  TlsCredentials(const TlsCredentials&) = delete;
  TlsCredentials& operator=(const TlsCredentials&) = delete;

  // Reads `dir`: ca-cert.pem is required, and at least one of the two pairs. A private key
  // that others than its owner may read is refused. Errors name the file and the problem.
  static Result<std::shared_ptr<const TlsCredentials>> load(const std::string& dir);

  const std::string& dir() const { return dir_; }
  // nullptr when the pair is missing (message: why_no_server / why_no_client).
  ssl_ctx_st* server_context() const { return server_; }
  ssl_ctx_st* client_context() const { return client_; }
  bool has_client_certificate() const { return has_client_cert_; }

 private:
  TlsCredentials() = default;
  std::string dir_;
  ssl_ctx_st* server_ = nullptr;  // server pair, demands a client certificate from the CA
  ssl_ctx_st* client_ = nullptr;  // checks the server against the CA; client pair if present
  bool has_client_cert_ = false;
};

// QEMU's tls-authz for tern: the client certificate subjects a destination accepts, one
// distinguished name per line in RFC 2253 form as `openssl x509 -noout -subject -nameopt
// RFC2253` prints it ("CN=src.example,O=tern"; a leading "subject=" is ignored; '#' comments).
struct TlsAuthz {
  std::vector<std::string> names;
  std::string origin;  // the file, for messages
  bool allows(const std::string& dn) const;
};
Result<std::shared_ptr<const TlsAuthz>> load_tls_authz(const std::string& path);

// What ternd defined at start: credential sets and allow-lists by QMP id ("tls0", "authz0"),
// which the tls-creds and tls-authz parameters name.
struct TlsCatalog {
  std::map<std::string, std::shared_ptr<const TlsCredentials>> creds;
  std::map<std::string, std::shared_ptr<const TlsAuthz>> authz;
  // TLS is the host's only authentication (ternd without a key or --insecure): tls-creds
  // may not be cleared.
  bool required = false;
};

// QEMU's parameters as the engine holds them (strings: what QMP set and reports).
struct TlsSettings {
  std::string creds;     // "tls-creds": a credential set's id; "" = no TLS
  std::string hostname;  // "tls-hostname": source; "" = the host of the URI
  std::string authz;     // "tls-authz": destination; "" = any client the CA signed
};

// What a transport needs to run TLS under its channels: resolved from TlsSettings.
struct TlsChannelConfig {
  std::shared_ptr<const TlsCredentials> creds;
  std::string hostname;                   // source: the name the destination must carry
  std::shared_ptr<const TlsAuthz> authz;  // destination: nullptr = any client of the CA
};

// Resolves `settings` against `catalog`; nullptr when settings.creds is empty. kNotFound names
// the ids the catalog has.
Result<std::shared_ptr<const TlsChannelConfig>> resolve_tls(const TlsSettings& settings,
                                                            const TlsCatalog* catalog);

}  // namespace tern
