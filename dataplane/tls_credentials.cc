#include "dataplane/tls_credentials.h"

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/stat.h>

#include <fstream>

namespace tern {
namespace {

// The OpenSSL error queue in words (and emptied), for messages.
std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    char buf[256];
    ERR_error_string_n(e, buf, sizeof(buf));
    out += (out.empty() ? "" : "; ") + std::string(buf);
  }
  return out.empty() ? "no detail from OpenSSL" : out;
}

bool exists(const std::string& path) {
  struct stat st {};
  return ::stat(path.c_str(), &st) == 0;
}

Status check_private(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status("tls key " + path);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return Status(Code::kInvalidArgument,
                  "tls key " + path + " may be read by others than its owner (chmod 600 it)");
  return Status::ok();
}

// A TLS 1.3-only context that trusts `ca` and, if given, presents `cert` / `key`.
Result<SSL_CTX*> make_context(const SSL_METHOD* method, const std::string& ca,
                              const std::string& cert, const std::string& key) {
  SSL_CTX* ctx = SSL_CTX_new(method);
  if (ctx == nullptr) return Status(Code::kInternal, "SSL_CTX_new: " + openssl_errors());
  auto fail = [&](const std::string& what) {
    SSL_CTX_free(ctx);
    return Status(Code::kInvalidArgument, what + ": " + openssl_errors());
  };
  SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION);
  SSL_CTX_set_max_proto_version(ctx, TLS1_3_VERSION);
  // Frames are written as records complete: a partial write hands back what was taken, and a
  // retried write may come from another address holding the same bytes (tcp_channel.cc).
  SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
  SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
  SSL_CTX_set_num_tickets(ctx, 0);  // no post-handshake tickets in the data stream
  // A peer that closes without close_notify is a closed channel ("peer closed channel N"), as
  // without TLS; a truncated migration cannot pass for a whole one (completion is acked).
  SSL_CTX_set_options(ctx, SSL_OP_IGNORE_UNEXPECTED_EOF);
  // One recv takes several records (not two per record). Safe for wait_fd: the tcp channel's
  // poll_rx comes back empty only once OpenSSL wants more from the socket.
  SSL_CTX_set_read_ahead(ctx, 1);
  SSL_CTX_set_default_read_buffer_len(ctx, 256 << 10);
  if (SSL_CTX_load_verify_locations(ctx, ca.c_str(), nullptr) != 1)
    return fail("tls CA certificate " + ca);
  if (!cert.empty()) {
    if (SSL_CTX_use_certificate_chain_file(ctx, cert.c_str()) != 1)
      return fail("tls certificate " + cert);
    if (SSL_CTX_use_PrivateKey_file(ctx, key.c_str(), SSL_FILETYPE_PEM) != 1)
      return fail("tls key " + key);
    if (SSL_CTX_check_private_key(ctx) != 1)
      return fail("tls key " + key + " does not belong to " + cert);
  }
  return ctx;
}

}  // namespace

TlsCredentials::~TlsCredentials() {
  SSL_CTX_free(server_);
  SSL_CTX_free(client_);
}

Result<std::shared_ptr<const TlsCredentials>> TlsCredentials::load(const std::string& dir) {
  const std::string ca = dir + "/ca-cert.pem";
  if (!exists(ca))
    return Status(Code::kNotFound, "tls credentials " + dir + ": no ca-cert.pem (expected the "
                                   "layout of QEMU's tls-creds-x509: ca-cert.pem, "
                                   "server-cert.pem, server-key.pem, client-cert.pem, "
                                   "client-key.pem)");
  std::shared_ptr<TlsCredentials> c(new TlsCredentials());
  c->dir_ = dir;
  const std::string scert = dir + "/server-cert.pem", skey = dir + "/server-key.pem";
  const std::string ccert = dir + "/client-cert.pem", ckey = dir + "/client-key.pem";
  if (exists(scert) || exists(skey)) {
    if (Status s = check_private(skey); !s.is_ok()) return s;
    auto ctx = make_context(TLS_server_method(), ca, scert, skey);
    if (!ctx) return ctx.status();
    c->server_ = *ctx;
    // Mutual: the destination demands a client certificate signed by the CA.
    SSL_CTX_set_verify(c->server_, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, nullptr);
  }
  c->has_client_cert_ = exists(ccert) || exists(ckey);
  if (c->has_client_cert_)
    if (Status s = check_private(ckey); !s.is_ok()) return s;
  auto ctx = make_context(TLS_client_method(), ca, c->has_client_cert_ ? ccert : "",
                          c->has_client_cert_ ? ckey : "");
  if (!ctx) return ctx.status();
  c->client_ = *ctx;
  SSL_CTX_set_verify(c->client_, SSL_VERIFY_PEER, nullptr);
  return std::shared_ptr<const TlsCredentials>(std::move(c));
}

bool TlsAuthz::allows(const std::string& dn) const {
  for (const std::string& n : names)
    if (n == dn) return true;
  return false;
}

Result<std::shared_ptr<const TlsAuthz>> load_tls_authz(const std::string& path) {
  std::ifstream f(path);
  if (!f) return errno_status("tls-authz file " + path);
  auto a = std::make_shared<TlsAuthz>();
  a->origin = path;
  std::string line;
  while (std::getline(f, line)) {
    const auto first = line.find_first_not_of(" \t\r");
    if (first == std::string::npos || line[first] == '#') continue;
    line = line.substr(first, line.find_last_not_of(" \t\r") + 1 - first);
    if (line.rfind("subject=", 0) == 0) line = line.substr(8);
    while (!line.empty() && line.front() == ' ') line.erase(0, 1);
    a->names.push_back(line);
  }
  if (a->names.empty())
    return Status(Code::kInvalidArgument,
                  "tls-authz file " + path + " names no certificate subject (one per line, as "
                  "`openssl x509 -noout -subject -nameopt RFC2253` prints it)");
  return std::shared_ptr<const TlsAuthz>(std::move(a));
}

Result<std::shared_ptr<const TlsChannelConfig>> resolve_tls(const TlsSettings& settings,
                                                            const TlsCatalog* catalog) {
  if (settings.creds.empty()) return std::shared_ptr<const TlsChannelConfig>();
  auto known = [](const auto& m) {
    std::string s;
    for (const auto& [id, v] : m) s += (s.empty() ? "" : ", ") + id;
    return s.empty() ? std::string("none (ternd defines them at start)") : s;
  };
  static const TlsCatalog kNone;
  const TlsCatalog& cat = catalog != nullptr ? *catalog : kNone;
  auto cfg = std::make_shared<TlsChannelConfig>();
  const auto c = cat.creds.find(settings.creds);
  if (c == cat.creds.end())
    return Status(Code::kNotFound, "tls-creds '" + settings.creds +
                                       "' is not a credential set here; defined: " +
                                       known(cat.creds));
  cfg->creds = c->second;
  cfg->hostname = settings.hostname;
  if (!settings.authz.empty()) {
    const auto a = cat.authz.find(settings.authz);
    if (a == cat.authz.end())
      return Status(Code::kNotFound, "tls-authz '" + settings.authz +
                                         "' is not an allow-list here; defined: " +
                                         known(cat.authz));
    cfg->authz = a->second;
  }
  return std::shared_ptr<const TlsChannelConfig>(std::move(cfg));
}

}  // namespace tern
