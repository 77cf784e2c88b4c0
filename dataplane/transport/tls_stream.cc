#include "dataplane/transport/detail/tls_stream.h"

#include <arpa/inet.h>
#include <errno.h>
#include <sys/socket.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <cstdint>
#include <cstring>

namespace tern::detail {
namespace {

std::string openssl_errors() {
  std::string out;
  while (unsigned long e = ERR_get_error()) {
    const char* r = ERR_reason_error_string(e);
    out += (out.empty() ? "" : "; ") + std::string(r ? r : "unknown OpenSSL error");
  }
  return out;
}

bool is_ip_literal(const std::string& host) {
  unsigned char buf[16];
  return ::inet_pton(AF_INET, host.c_str(), buf) == 1 ||
         ::inet_pton(AF_INET6, host.c_str(), buf) == 1;
}

std::string subject_of(X509* cert) {
  if (cert == nullptr) return "";
  BIO* bio = BIO_new(BIO_s_mem());
  X509_NAME_print_ex(bio, X509_get_subject_name(cert), 0, XN_FLAG_RFC2253);
  char* data = nullptr;
  const long n = BIO_get_mem_data(bio, &data);
  std::string s(data, static_cast<size_t>(n));
  BIO_free(bio);
  return s;
}

// A socket BIO whose writes are send(MSG_NOSIGNAL): OpenSSL's own writes with write(2), and a
// peer that closed would raise SIGPIPE in a process that did not ignore it (library code must
// not change a process's signal dispositions).
int bio_write(BIO* b, const char* buf, int len) {
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  ssize_t w;
  do {
    w = ::send(fd, buf, static_cast<size_t>(len), MSG_NOSIGNAL);
  } while (w < 0 && errno == EINTR);
  if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_write(b);
  return static_cast<int>(w);
}

int bio_read(BIO* b, char* buf, int len) {
  const int fd = static_cast<int>(reinterpret_cast<intptr_t>(BIO_get_data(b)));
  BIO_clear_retry_flags(b);
  ssize_t r;
  do {
    r = ::recv(fd, buf, static_cast<size_t>(len), 0);
  } while (r < 0 && errno == EINTR);
  if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) BIO_set_retry_read(b);
  return static_cast<int>(r);
}

long bio_ctrl(BIO*, int cmd, long, void*) { return cmd == BIO_CTRL_FLUSH ? 1 : 0; }

BIO_METHOD* socket_method() {
  static BIO_METHOD* const method = [] {
    BIO_METHOD* m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "tern tcp socket");
    BIO_meth_set_write(m, bio_write);
    BIO_meth_set_read(m, bio_read);
    BIO_meth_set_ctrl(m, bio_ctrl);
    return m;
  }();
  return method;
}

// SSL over `fd` through socket_method(); nullptr on failure.
SSL* ssl_over(SSL_CTX* ctx, int fd) {
  SSL* ssl = SSL_new(ctx);
  BIO* bio = ssl ? BIO_new(socket_method()) : nullptr;
  if (bio == nullptr) {
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_data(bio, reinterpret_cast<void*>(static_cast<intptr_t>(fd)));
  BIO_set_init(bio, 1);
  SSL_set_bio(ssl, bio, bio);
  return ssl;
}

// SSL over two memory BIOs (input, output); an empty input reads as "retry", not EOF.
SSL* ssl_in_memory(SSL_CTX* ctx) {
  SSL* ssl = SSL_new(ctx);
  if (ssl == nullptr) return nullptr;
  BIO* in = BIO_new(BIO_s_mem());
  BIO* out = BIO_new(BIO_s_mem());
  if (in == nullptr || out == nullptr) {
    BIO_free(in);
    BIO_free(out);
    SSL_free(ssl);
    return nullptr;
  }
  BIO_set_mem_eof_return(in, -1);
  SSL_set_bio(ssl, in, out);
  return ssl;
}

// Index of the ex_data slot that points a server SSL at its TlsStream (tls-authz).
int stream_slot() {
  static const int slot = SSL_get_ex_new_index(0, nullptr, nullptr, nullptr, nullptr);
  return slot;
}

}  // namespace

// tls-authz is checked with the chain, so a refused subject ends the handshake with an alert
// the source sees, like a certificate from another CA.
int TlsStream::verify_with_authz(int ok, X509_STORE_CTX* store) {
  if (!ok || X509_STORE_CTX_get_error_depth(store) != 0) return ok;
  auto* ssl = static_cast<SSL*>(
      X509_STORE_CTX_get_ex_data(store, SSL_get_ex_data_X509_STORE_CTX_idx()));
  auto* self = static_cast<TlsStream*>(SSL_get_ex_data(ssl, stream_slot()));
  if (self == nullptr || self->config_->authz == nullptr) return ok;
  const std::string subject = subject_of(X509_STORE_CTX_get_current_cert(store));
  if (self->config_->authz->allows(subject)) return ok;
  self->refused_subject_ = subject;
  X509_STORE_CTX_set_error(store, X509_V_ERR_APPLICATION_VERIFICATION);
  return 0;
}

TlsStream::TlsStream(SSL* ssl, bool is_server, std::shared_ptr<const TlsChannelConfig> config,
                     std::string peer_name)
    : ssl_(ssl), is_server_(is_server), config_(std::move(config)),
      peer_name_(std::move(peer_name)) {}

TlsStream::~TlsStream() { SSL_free(ssl_); }

Result<std::unique_ptr<TlsStream>> TlsStream::server(
    int fd, std::shared_ptr<const TlsChannelConfig> config) {
  if (config->creds->server_context() == nullptr)  // TcpTransport::listen refuses it first
    return Status(Code::kInvalidArgument, "tls-creds " + config->creds->dir() +
                                              " has no server pair");
  SSL* ssl = ssl_over(config->creds->server_context(), fd);
  return make_server(ssl, std::move(config));
}

Result<std::unique_ptr<TlsStream>> TlsStream::server_in_memory(
    std::shared_ptr<const TlsChannelConfig> config) {
  if (config->creds->server_context() == nullptr)
    return Status(Code::kInvalidArgument, "tls-creds " + config->creds->dir() +
                                              " has no server pair (server-cert.pem, "
                                              "server-key.pem): this host cannot be a destination");
  SSL* ssl = ssl_in_memory(config->creds->server_context());
  return make_server(ssl, std::move(config));
}

Result<std::unique_ptr<TlsStream>> TlsStream::make_server(
    SSL* ssl, std::shared_ptr<const TlsChannelConfig> config) {
  if (ssl == nullptr) return Status(Code::kInternal, "SSL_new: " + openssl_errors());
  SSL_set_verify(ssl, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, verify_with_authz);
  SSL_set_accept_state(ssl);
  std::unique_ptr<TlsStream> stream(new TlsStream(ssl, true, std::move(config), ""));
  SSL_set_ex_data(ssl, stream_slot(), stream.get());
  return stream;
}

Result<std::unique_ptr<TlsStream>> TlsStream::client(
    int fd, std::shared_ptr<const TlsChannelConfig> config, const std::string& host) {
  SSL* ssl = ssl_over(config->creds->client_context(), fd);
  return make_client(ssl, std::move(config), host);
}

Result<std::unique_ptr<TlsStream>> TlsStream::client_in_memory(
    std::shared_ptr<const TlsChannelConfig> config, const std::string& host) {
  if (config->hostname.empty() && host.empty())
    return Status(Code::kInvalidArgument,
                  "tls-hostname is not set and the URI names no host: set tls-hostname to the "
                  "name in the destination's certificate");
  SSL* ssl = ssl_in_memory(config->creds->client_context());
  return make_client(ssl, std::move(config), host);
}

Result<std::unique_ptr<TlsStream>> TlsStream::make_client(
    SSL* ssl, std::shared_ptr<const TlsChannelConfig> config, const std::string& host) {
  const std::string name = config->hostname.empty() ? host : config->hostname;
  if (ssl == nullptr) return Status(Code::kInternal, "SSL_new: " + openssl_errors());
  // The destination's certificate must name `name`: an IP address in its SAN, or a DNS name
  // in its SAN (or its CN when it has no DNS SAN).
  const int named = is_ip_literal(name) ? X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl),
                                                                        name.c_str())
                                        : SSL_set1_host(ssl, name.c_str());
  if (!is_ip_literal(name)) SSL_set_tlsext_host_name(ssl, name.c_str());
  if (named != 1) {
    SSL_free(ssl);
    return Status(Code::kInvalidArgument, "tls-hostname '" + name + "' is not a host name");
  }
  SSL_set_connect_state(ssl);
  return std::unique_ptr<TlsStream>(new TlsStream(ssl, false, std::move(config), name));
}

void TlsStream::give_input(const void* data, size_t len) {
  BIO_write(SSL_get_rbio(ssl_), data, static_cast<int>(len));
}

size_t TlsStream::take_output(void* out, size_t cap) {
  BIO* wbio = SSL_get_wbio(ssl_);
  if (BIO_ctrl_pending(wbio) == 0 || cap == 0) return 0;
  const int n = BIO_read(wbio, out, static_cast<int>(std::min<size_t>(cap, 1 << 30)));
  return n > 0 ? static_cast<size_t>(n) : 0;
}

Status TlsStream::export_key(const std::string& label, const void* context, size_t context_len,
                             uint8_t* out, size_t len) const {
  if (!established_ ||
      SSL_export_keying_material(ssl_, out, len, label.data(), label.size(),
                                 static_cast<const unsigned char*>(context), context_len,
                                 1) != 1)
    return Status(Code::kInternal, "TLS exporter: " + openssl_errors());
  return Status::ok();
}

ssize_t TlsStream::classify(int rc, const char* what) {
  const int err = SSL_get_error(ssl_, rc);
  want_write_ = err == SSL_ERROR_WANT_WRITE;
  if (err == SSL_ERROR_WANT_READ || err == SSL_ERROR_WANT_WRITE) {
    ERR_clear_error();
    return 0;
  }
  if (err == SSL_ERROR_ZERO_RETURN) return kClosed;
  if (err == SSL_ERROR_SYSCALL) {
    const std::string detail = openssl_errors();
    if (errno == 0 || errno == EPIPE || errno == ECONNRESET) {
      if (detail.empty()) return kClosed;
    }
    error_ = Status(Code::kIo, std::string("TLS ") + what + ": " +
                                   (detail.empty() ? std::strerror(errno) : detail));
    return kFailed;
  }
  std::string detail = openssl_errors();
  const long verify = SSL_get_verify_result(ssl_);
  if (verify != X509_V_OK) {
    std::string why = X509_verify_cert_error_string(verify);
    if (is_server_) {
      if (verify == X509_V_ERR_APPLICATION_VERIFICATION)
        why = "its subject '" + refused_subject_ + "' is not in tls-authz " +
              config_->authz->origin;
      detail = "the source's certificate is refused: " + why;
    } else if (verify == X509_V_ERR_HOSTNAME_MISMATCH || verify == X509_V_ERR_IP_ADDRESS_MISMATCH) {
      detail = "the destination's certificate is not for '" + peer_name_ +
               "' (tls-hostname; default: the host of the URI): not migrating to it";
    } else {
      detail = "the destination's certificate is refused: " + why + " (CA " +
               config_->creds->dir() + "/ca-cert.pem): not migrating to it";
    }
  } else if (!is_server_ && detail.find("alert") != std::string::npos) {
    detail = "the destination refused this source (" + detail + "): does it have a client "
             "certificate from the destination's CA, with a subject in its tls-authz?";
  } else if (is_server_ && detail.find("alert") != std::string::npos) {
    detail = "the source refused this destination's certificate (" + detail + "): does the "
             "source trust this CA, and is its tls-hostname (or the URI's host) in the "
             "certificate?";
  } else if (is_server_ && detail.find("certificate") != std::string::npos) {
    detail = "the source's certificate is refused: " + detail;
  }
  error_ = Status(Code::kDenied, std::string("TLS ") + what + ": " +
                                     (detail.empty() ? "failed" : detail));
  return kFailed;
}

Result<bool> TlsStream::handshake() {
  if (established_) return true;
  const int rc = SSL_do_handshake(ssl_);
  if (rc == 1) {
    established_ = true;
    want_write_ = false;
    return true;
  }
  const ssize_t r = classify(rc, "handshake");
  if (r == 0) return false;
  if (r == kClosed)
    return Status(Code::kIo, is_server_ ? "the peer left during the TLS handshake (a source "
                                          "without TLS?)"
                                        : "the destination closed the connection during the TLS "
                                          "handshake (does it run TLS? tls-creds on both sides)");
  return error_;
}

ssize_t TlsStream::read(void* buf, size_t len) {
  const int rc = SSL_read(ssl_, buf, static_cast<int>(std::min<size_t>(len, 1 << 30)));
  if (rc > 0) return rc;
  return classify(rc, "receive");
}

ssize_t TlsStream::write(const void* buf, size_t len) {
  const int rc = SSL_write(ssl_, buf, static_cast<int>(std::min<size_t>(len, 1 << 30)));
  if (rc > 0) {
    want_write_ = false;
    return rc;
  }
  return classify(rc, "send");
}

std::string TlsStream::description() const {
  return std::string(SSL_get_version(ssl_) == std::string("TLSv1.3") ? "TLS 1.3"
                                                                      : SSL_get_version(ssl_)) +
         ", " + SSL_get_cipher_name(ssl_);
}

std::string TlsStream::peer_subject() const {
  return subject_of(SSL_get0_peer_certificate(ssl_));
}

}  // namespace tern::detail
