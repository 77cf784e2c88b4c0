#include "dataplane/transport/tcp.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <cstring>
#include <utility>
#include <memory>

#include "dataplane/toolkit/hello.h"
#include "dataplane/transport/detail/tcp_channel.h"

namespace tern {
namespace {

using toolkit::Clock;

constexpr int kSocketBuffer = 4 << 20;

// Closes an fd on scope exit unless released.
struct FdGuard {
  int fd;
  ~FdGuard() {
    if (fd >= 0) ::close(fd);
  }
  int release() { return std::exchange(fd, -1); }
};

// Largest socket buffer an unprivileged SO_{SND,RCV}BUF may ask for (net.core.*mem_max).
int sysctl_int(const char* path) {
  int v = 0;
  if (FILE* f = std::fopen(path, "r")) {
    if (std::fscanf(f, "%d", &v) != 1) v = 0;
    std::fclose(f);
  }
  return v;
}

// TCP_NODELAY, and big buffers when the host allows them; otherwise the kernel's autotuning
// (which a small explicit size would switch off) does better.
void tune_socket(int fd) {
  int one = 1;
  ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
  static const int rmax = sysctl_int("/proc/sys/net/core/rmem_max");
  static const int wmax = sysctl_int("/proc/sys/net/core/wmem_max");
  int size = kSocketBuffer;
  if (rmax >= size) ::setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof(size));
  if (wmax >= size) ::setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &size, sizeof(size));
}

struct Endpoint {
  sockaddr_storage addr{};
  socklen_t len = 0;
  std::string text;  // as the user wrote it, for messages
  std::string host;  // without brackets: the name TLS checks by default
};

// "HOST:PORT" or "[V6]:PORT" -> socket address. Errors name the bad part.
Result<Endpoint> resolve(const std::string& address, bool passive) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos)
    return Status(Code::kInvalidArgument,
                  "tcp address '" + address + "' has no port (expected HOST:PORT)");
  std::string host = address.substr(0, colon);
  const std::string port = address.substr(colon + 1);
  if (host.size() >= 2 && host.front() == '[' && host.back() == ']')
    host = host.substr(1, host.size() - 2);
  if (host.empty())
    return Status(Code::kInvalidArgument,
                  "tcp address '" + address + "' has no host (expected HOST:PORT)");
  char* end = nullptr;
  const unsigned long p = port.empty() ? 70000 : std::strtoul(port.c_str(), &end, 10);
  if (port.empty() || *end != '\0' || p > 65535)
    return Status(Code::kInvalidArgument, "tcp port '" + port + "' in '" + address +
                                              "' is not a number 0-65535");
  if (p == 0 && !passive)
    return Status(Code::kInvalidArgument, "tcp port 0 in '" + address + "': connect needs the "
                                          "destination's real port");
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_NUMERICSERV | (passive ? AI_PASSIVE : 0);
  addrinfo* res = nullptr;
  if (int rc = ::getaddrinfo(host.c_str(), port.c_str(), &hints, &res); rc != 0)
    return Status(Code::kInvalidArgument,
                  "tcp host '" + host + "' does not resolve: " + ::gai_strerror(rc));
  Endpoint e;
  std::memcpy(&e.addr, res->ai_addr, res->ai_addrlen);
  e.len = res->ai_addrlen;
  e.text = address;
  e.host = host;
  ::freeaddrinfo(res);
  return e;
}

std::string uri_of(const sockaddr_storage& a) {
  char host[INET6_ADDRSTRLEN] = "";
  uint16_t port = 0;
  if (a.ss_family == AF_INET6) {
    auto* s = reinterpret_cast<const sockaddr_in6*>(&a);
    ::inet_ntop(AF_INET6, &s->sin6_addr, host, sizeof(host));
    port = ntohs(s->sin6_port);
    return "tcp:[" + std::string(host) + "]:" + std::to_string(port);
  }
  auto* s = reinterpret_cast<const sockaddr_in*>(&a);
  ::inet_ntop(AF_INET, &s->sin_addr, host, sizeof(host));
  port = ntohs(s->sin_port);
  return "tcp:" + std::string(host) + ":" + std::to_string(port);
}

// One connected, tuned, non-blocking socket to `e`, within `deadline`.
Result<int> dial(const Endpoint& e, Clock::time_point deadline,
                 std::chrono::milliseconds timeout) {
  FdGuard fd{::socket(e.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) return errno_status("tcp socket");
  tune_socket(fd.fd);
  if (::connect(fd.fd, reinterpret_cast<const sockaddr*>(&e.addr), e.len) != 0) {
    if (errno != EINPROGRESS) return errno_status("tcp connect to " + e.text);
    pollfd pfd{fd.fd, POLLOUT, 0};
    int r;
    do {
      r = ::poll(&pfd, 1, toolkit::remaining_ms(deadline));
    } while (r < 0 && errno == EINTR);
    if (r == 0) return toolkit::timeout_status("tcp connect to " + e.text, timeout);
    int err = 0;
    socklen_t len = sizeof(err);
    ::getsockopt(fd.fd, SOL_SOCKET, SO_ERROR, &err, &len);
    if (err != 0) return errno_status("tcp connect to " + e.text, err);
  }
  return fd.release();
}

// Runs the client side of a TLS handshake on `fd` to its end (or `deadline`).
Status finish_tls_handshake(detail::TlsStream& tls, int fd, const Endpoint& e,
                            Clock::time_point deadline, std::chrono::milliseconds timeout) {
  while (true) {
    auto done = tls.handshake();
    if (!done)
      return Status(done.status().code(), "tcp:" + e.text + ": " + done.status().message());
    if (*done) return Status::ok();
    const int ms = toolkit::remaining_ms(deadline);
    if (ms == 0) return toolkit::timeout_status("TLS handshake with tcp:" + e.text, timeout);
    pollfd pfd{fd, static_cast<short>(tls.wants_write() ? POLLOUT : POLLIN), 0};
    ::poll(&pfd, 1, ms);
  }
}

}  // namespace

Status TcpTransport::set_tls(std::shared_ptr<const TlsChannelConfig> tls) {
  tls_ = std::move(tls);
  return Status::ok();
}

std::string TcpTransport::encryption() const {
  std::lock_guard<std::mutex> lock(encryption_mu_);
  return encryption_;
}

void TcpTransport::note_encryption(const ChannelSet& set) {
  std::string e;
  if (!set.empty())
    if (auto* ch = dynamic_cast<const detail::TcpChannel*>(set.front().get()))
      e = ch->tls_description();
  std::lock_guard<std::mutex> lock(encryption_mu_);
  encryption_ = e;
}

Result<std::unique_ptr<toolkit::RawChannel>> TcpTransport::accepted_channel(int fd) {
  if (!tls_) return std::unique_ptr<toolkit::RawChannel>(new detail::TcpChannel(fd));
  auto tls = detail::TlsStream::server(fd, tls_);
  if (!tls) {
    ::close(fd);
    return tls.status();
  }
  return std::unique_ptr<toolkit::RawChannel>(new detail::TcpChannel(fd, std::move(*tls)));
}

TcpTransport::~TcpTransport() {
  if (listen_fd_ >= 0) ::close(listen_fd_);
}

Result<std::string> TcpTransport::listen(const std::string& address) {
  if (listen_fd_ >= 0)
    return Status(Code::kInvalidArgument, "tcp: already listening on " + listen_uri_);
  if (tls_ && tls_->creds->server_context() == nullptr)  // said now, not at the first source
    return Status(Code::kInvalidArgument, "tls-creds " + tls_->creds->dir() +
                                              " has no server-cert.pem / server-key.pem: this "
                                              "side cannot be a TLS destination");
  auto ep = resolve(address, /*passive=*/true);
  if (!ep) return ep.status();
  FdGuard fd{::socket(ep->addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0)};
  if (fd.fd < 0) return errno_status("tcp socket");
  int one = 1;
  ::setsockopt(fd.fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
  tune_socket(fd.fd);  // accepted sockets inherit the buffer sizes (and the window scale)
  if (::bind(fd.fd, reinterpret_cast<const sockaddr*>(&ep->addr), ep->len) != 0)
    return errno_status("tcp bind to " + address);
  if (::listen(fd.fd, 128) != 0) return errno_status("tcp listen on " + address);
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  if (::getsockname(fd.fd, reinterpret_cast<sockaddr*>(&bound), &len) != 0)
    return errno_status("tcp getsockname");
  listen_fd_ = fd.release();
  listen_uri_ = uri_of(bound);
  return listen_uri_;
}

Result<ChannelSet> TcpTransport::accept(std::chrono::milliseconds timeout) {
  if (listen_fd_ < 0) return Status(Code::kInvalidArgument, "tcp: accept() before listen()");
  const auto deadline = Clock::now() + timeout;
  gatherer_.set_peer_key(peer_key_);
  gatherer_.set_hello_timeout(handshake_timeout_);
  while (true) {
    // Everything in the backlog joins the gatherer, which reads each hello without blocking:
    // one slow or hostile connection holds up no other.
    while (true) {
      sockaddr_storage peer{};
      socklen_t len = sizeof(peer);
      int fd = ::accept4(listen_fd_, reinterpret_cast<sockaddr*>(&peer), &len,
                         SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) break;
        // Out of fds or memory: the waiters' deadlines free some; the listener stays.
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) break;
        return errno_status("tcp accept on " + listen_uri_);
      }
      int one = 1;
      ::setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
      auto ch = accepted_channel(fd);
      if (!ch) return ch.status();  // the credentials cannot serve: no connection can pass
      gatherer_.add_connection(std::move(*ch), uri_of(peer));
    }
    gatherer_.poll();
    if (auto set = gatherer_.take_complete()) {
      note_encryption(*set);
      return std::move(*set);
    }
    const int ms = toolkit::remaining_ms(std::min(deadline, gatherer_.next_deadline()));
    if (Clock::now() >= deadline)
      return toolkit::timeout_status(
          "tcp accept on " + listen_uri_ + " (have " + gatherer_.progress() + ")", timeout);
    std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
    for (int fd : gatherer_.wait_fds()) fds.push_back({fd, POLLIN, 0});
    // A bounded nap also covers an accept4 that failed for lack of fds.
    ::poll(fds.data(), fds.size(), std::min(ms, 100));
  }
}

Result<ChannelSet> TcpTransport::connect_with_hellos(const std::string& address,
                                                     const std::vector<HelloPayload>& hellos,
                                                     std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto ep = resolve(address, /*passive=*/false);
  if (!ep) return ep.status();
  ChannelSet out;
  for (const HelloPayload& h : hellos) {
    auto fd = dial(*ep, deadline, timeout);
    if (!fd) return fd.status();
    std::unique_ptr<detail::TlsStream> tls;
    if (tls_) {  // TLS first, then the hello inside it (as QEMU: TLS, then its stream)
      auto t = detail::TlsStream::client(*fd, tls_, ep->host);
      if (!t) {
        ::close(*fd);
        return t.status();
      }
      if (Status s = finish_tls_handshake(**t, *fd, *ep, deadline, timeout); !s.is_ok()) {
        ::close(*fd);
        return s;
      }
      tls = std::move(*t);
    }
    auto ch = std::make_unique<detail::TcpChannel>(*fd, std::move(tls));
    if (Status s = toolkit::send_hello(*ch, h, deadline); !s.is_ok()) return s;
    out.push_back(std::move(ch));
  }
  note_encryption(out);
  return out;
}

TransportRegistration tcp_transport_registration() {
  return {"tcp", [] { return std::unique_ptr<Transport>(new TcpTransport()); },
          [] { return TransportAvailability{true, "tcp works wherever sockets do"}; }};
}

}  // namespace tern
