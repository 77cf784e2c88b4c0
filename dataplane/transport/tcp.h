// The tcp transport ("tcp:HOST:PORT"): one TCP connection per channel, TCP_NODELAY,
// non-blocking sockets, large socket buffers. The datapath is in detail/tcp_channel.h.
// Works wherever sockets do; it is the fallback when neither rdma nor dpdk is available.
// With set_tls, every connection runs TLS 1.3 (x509, mutual) before its hello: the source
// finishes each handshake in connect(), the destination in its channels' first poll_rx
// (detail/tls_stream.h; docs/security.md).
//
// Threads: a TcpTransport is used by one control thread at a time.
#pragma once

#include <chrono>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/toolkit/hello_transport.h"
#include "dataplane/toolkit/session_gatherer.h"

namespace tern {

class TcpTransport final : public toolkit::HelloTransport {
 public:
  TcpTransport() = default;
  ~TcpTransport() override;  // closes the listening socket
  TcpTransport(const TcpTransport&) = delete;
  TcpTransport& operator=(const TcpTransport&) = delete;

  std::string_view name() const override { return "tcp"; }
  // `address` is HOST:PORT (IPv6 as [ADDR]:PORT); port 0 picks a free port. Returns the URI
  // with the real port, e.g. "tcp:127.0.0.1:40111".
  Result<std::string> listen(const std::string& address) override;
  // Accepts connections until one session's channels are complete; channels are gathered by
  // session across calls (toolkit::SessionGatherer). A connection whose hello is bad, late or
  // does not fit its session is closed and reported by take_rejected.
  Result<ChannelSet> accept(std::chrono::milliseconds timeout) override;
  std::vector<Status> take_rejected() override { return gatherer_.take_rejected(); }
  // TLS under every channel: the destination runs the server side of each connection before its
  // hello, the source the client side before it sends one.
  Status set_tls(std::shared_ptr<const TlsChannelConfig> tls) override;
  std::string encryption() const override;

 private:
  // HelloTransport: one channel per hello, each hello sent unchanged.
  Result<ChannelSet> connect_with_hellos(const std::string& address,
                                         const std::vector<HelloPayload>& hellos,
                                         std::chrono::milliseconds timeout) override;

  // Wraps an accepted socket in a channel (a server TLS session when TLS is on).
  Result<std::unique_ptr<toolkit::RawChannel>> accepted_channel(int fd);
  void note_encryption(const ChannelSet& set);

  std::shared_ptr<const TlsChannelConfig> tls_;
  mutable std::mutex encryption_mu_;
  std::string encryption_;  // of the last channels handed out (encryption_mu_)
  int listen_fd_ = -1;
  std::string listen_uri_;
  toolkit::SessionGatherer gatherer_;  // connections accepted, sessions not yet complete
};

// The registry entry (transports/builtin_transports.cc): usable wherever sockets work, after
// rdma and dpdk in the default choice.
TransportRegistration tcp_transport_registration();

}  // namespace tern
