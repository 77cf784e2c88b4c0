// TLS 1.3 over one non-blocking tcp socket (OpenSSL), for the tcp channel's TLS mode: the
// handshake moved on without blocking, then reads and writes of plaintext that never block.
// The destination (server) demands a client certificate from its CA and, with tls-authz, one of
// the allowed subjects; the source (client) checks the destination's certificate against the CA
// and against tls-hostname (a DNS name or an IP address, in the SAN, or the CN without one).
//
// The *_in_memory variants run over two memory buffers instead of a socket, for transports
// without a byte stream (rdma, dpdk: the handshake travels in frames, toolkit/channel_tls.h):
// give_input() hands it the peer's bytes, take_output() the bytes it wants sent.
//
// Threads: one owner thread at a time (the channel's). Does not own the fd.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>

#include "dataplane/tls_credentials.h"

struct ssl_st;             // OpenSSL's SSL
struct x509_store_ctx_st;  // OpenSSL's X509_STORE_CTX

namespace tern::detail {

class TlsStream {
 public:
  // Server side of a connection accepted on `fd`: `config.creds` must hold the server pair.
  static Result<std::unique_ptr<TlsStream>> server(
      int fd, std::shared_ptr<const TlsChannelConfig> config);
  // Client side of a connection to `host` (the URI's host, used when config.hostname is "").
  static Result<std::unique_ptr<TlsStream>> client(
      int fd, std::shared_ptr<const TlsChannelConfig> config, const std::string& host);
  // The same over memory buffers (give_input / take_output).
  static Result<std::unique_ptr<TlsStream>> server_in_memory(
      std::shared_ptr<const TlsChannelConfig> config);
  // `host` may be "" only when config.hostname is set (kInvalidArgument otherwise).
  static Result<std::unique_ptr<TlsStream>> client_in_memory(
      std::shared_ptr<const TlsChannelConfig> config, const std::string& host);
  ~TlsStream();
  TlsStream(const TlsStream&) = delete;
  TlsStream& operator=(const TlsStream&) = delete;

  // Moves the handshake on, never waits: true once it is done and the peer passed every check;
  // false while it goes on (wait for the fd: wants_write() says POLLOUT, else POLLIN);
  // kDenied when a check failed, kIo when the peer left. Idempotent once done.
  Result<bool> handshake();
  bool established() const { return established_; }
  bool is_client() const { return !is_server_; }
  bool wants_write() const { return want_write_; }

  // Plaintext I/O once established: >0 bytes moved; 0 nothing now (the socket would block;
  // write: call again with the same bytes); kClosed the peer closed; kFailed see error().
  static constexpr ssize_t kClosed = -1;
  static constexpr ssize_t kFailed = -2;
  ssize_t read(void* buf, size_t len);
  ssize_t write(const void* buf, size_t len);
  const Status& error() const { return error_; }

  // In memory only: bytes from the peer, queued for the next handshake()/read().
  void give_input(const void* data, size_t len);
  // In memory only: moves up to `cap` bytes TLS wants sent into `out`; returns how many.
  size_t take_output(void* out, size_t cap);
  // RFC 8446 7.5 exporter (SSL_export_keying_material) once established: `len` bytes both
  // sides agree on, bound to this handshake, `label` and `context`. kInternal on failure.
  Status export_key(const std::string& label, const void* context, size_t context_len,
                    uint8_t* out, size_t len) const;

  // "TLS 1.3, TLS_AES_256_GCM_SHA384" once established.
  std::string description() const;
  // The peer certificate's subject in RFC 2253 form ("CN=src,O=tern"), "" if none.
  std::string peer_subject() const;

 private:
  TlsStream(ssl_st* ssl, bool is_server, std::shared_ptr<const TlsChannelConfig> config,
            std::string peer_name);
  // Server: the chain check plus tls-authz at depth 0 (OpenSSL's verify callback).
  static int verify_with_authz(int ok, ::x509_store_ctx_st* store);
  // The checks both server() variants set on `ssl` (owned by the result).
  static Result<std::unique_ptr<TlsStream>> make_server(
      ssl_st* ssl, std::shared_ptr<const TlsChannelConfig> config);
  static Result<std::unique_ptr<TlsStream>> make_client(
      ssl_st* ssl, std::shared_ptr<const TlsChannelConfig> config, const std::string& host);
  // Classifies a failed SSL call: 0 retry later, kClosed, kFailed (error_ set).
  ssize_t classify(int rc, const char* what);

  ssl_st* ssl_;
  const bool is_server_;
  std::shared_ptr<const TlsChannelConfig> config_;  // keeps the contexts and authz alive
  std::string peer_name_;  // client: the name checked against the certificate
  bool established_ = false;
  bool want_write_ = false;
  std::string refused_subject_;  // server: a client subject tls-authz does not list
  Status error_;
};

}  // namespace tern::detail
