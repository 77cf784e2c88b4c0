// The tcp transport ("tcp:HOST:PORT"): one TCP connection per channel, TCP_NODELAY,
// non-blocking sockets, large socket buffers. The datapath is in detail/tcp_channel.h.
// Works wherever sockets do; it is the fallback when neither rdma nor dpdk is available.
//
// Threads: a TcpTransport is used by one control thread at a time.
#pragma once

#include <chrono>
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

 private:
  // HelloTransport: one channel per hello, each hello sent unchanged.
  Result<ChannelSet> connect_with_hellos(const std::string& address,
                                         const std::vector<HelloPayload>& hellos,
                                         std::chrono::milliseconds timeout) override;

  int listen_fd_ = -1;
  std::string listen_uri_;
  toolkit::SessionGatherer gatherer_;  // connections accepted, sessions not yet complete
};

// The registry entry (transports/builtin_transports.cc): usable wherever sockets work, after
// rdma and dpdk in the default choice.
TransportRegistration tcp_transport_registration();

}  // namespace tern
