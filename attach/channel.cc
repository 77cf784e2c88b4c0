#include "attach/channel.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cstring>
#include <thread>

namespace tern::attach {
namespace {

using Clock = std::chrono::steady_clock;

int ms_left(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  return left.count() < 0 ? 0 : static_cast<int>(std::min<int64_t>(left.count(), 1 << 30));
}

// Waits until `fd` is ready for `events` or the deadline passes.
Status wait_fd(int fd, short events, Clock::time_point deadline, const char* what) {
  while (true) {
    pollfd p{fd, events, 0};
    int n = ::poll(&p, 1, ms_left(deadline));
    if (n > 0) return Status::ok();
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status(std::string("poll on the attach socket"));
    return Status(Code::kTimeout, std::string("timed out ") + what + " the attach socket");
  }
}

}  // namespace

void UniqueFd::reset() {
  if (fd_ >= 0) ::close(fd_);
  fd_ = -1;
}

Result<Channel> Channel::connect(const std::string& path, std::chrono::milliseconds limit) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.size() >= sizeof(addr.sun_path))
    return Status(Code::kInvalidArgument, "attach socket path too long: " + path);
  std::memcpy(addr.sun_path, path.c_str(), path.size() + 1);
  const auto deadline = Clock::now() + limit;
  while (true) {
    UniqueFd s(::socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0));
    if (s.get() < 0) return errno_status("socket(AF_UNIX)");
    if (::connect(s.get(), reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0)
      return Channel(std::move(s));
    const int err = errno;
    if ((err != ENOENT && err != ECONNREFUSED) || Clock::now() >= deadline)
      return errno_status("connect to the attach socket " + path, err);
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Status Channel::send(MsgType type, uint32_t id, View payload, const std::vector<int>& fds,
                     std::chrono::milliseconds limit) {
  if (!is_open()) return Status(Code::kIo, "the attach socket is closed");
  if (payload.size() > kMaxPayload || fds.size() > kMaxFds)
    return Status(Code::kInvalidArgument, type_name(static_cast<uint16_t>(type)) +
                                              ": payload or fd count over the protocol's limit");
  uint8_t head[kHeaderSize];
  encode_header({kVersion, type, static_cast<uint32_t>(payload.size()), id}, head);
  const auto deadline = Clock::now() + limit;
  size_t sent = 0;
  const size_t total = kHeaderSize + payload.size();
  while (sent < total) {
    iovec iov[2];
    int n_iov = 0;
    if (sent < kHeaderSize) iov[n_iov++] = {head + sent, kHeaderSize - sent};
    const size_t pay_from = sent > kHeaderSize ? sent - kHeaderSize : 0;
    if (payload.size() > pay_from)
      iov[n_iov++] = {const_cast<uint8_t*>(payload.data()) + pay_from, payload.size() - pay_from};
    msghdr mh{};
    mh.msg_iov = iov;
    mh.msg_iovlen = n_iov;
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    if (sent == 0 && !fds.empty()) {
      mh.msg_control = control;
      mh.msg_controllen = CMSG_SPACE(sizeof(int) * fds.size());
      cmsghdr* c = CMSG_FIRSTHDR(&mh);
      c->cmsg_level = SOL_SOCKET;
      c->cmsg_type = SCM_RIGHTS;
      c->cmsg_len = CMSG_LEN(sizeof(int) * fds.size());
      std::memcpy(CMSG_DATA(c), fds.data(), sizeof(int) * fds.size());
    }
    ssize_t n = ::sendmsg(sock_.get(), &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
    if (n > 0) {
      sent += static_cast<size_t>(n);
      continue;
    }
    if (n < 0 && errno == EINTR) continue;
    if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status s = wait_fd(sock_.get(), POLLOUT, deadline, "writing to"); !s) return s;
      continue;
    }
    if (n < 0 && (errno == EPIPE || errno == ECONNRESET))
      return Status(Code::kIo, "the peer closed the attach socket");
    return errno_status("sendmsg on the attach socket");
  }
  return Status::ok();
}

Status Channel::read_exact(uint8_t* p, size_t n, Clock::time_point deadline, bool header_start) {
  size_t got = 0;
  while (got < n) {
    ssize_t r = ::recv(sock_.get(), p + got, n - got, MSG_DONTWAIT);
    if (r > 0) {
      got += static_cast<size_t>(r);
      continue;
    }
    if (r == 0)
      return Status(Code::kIo, header_start && got == 0 ? "the peer closed the attach socket"
                                                        : "the peer closed the attach socket "
                                                          "in the middle of a message");
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) {
      if (Status s = wait_fd(sock_.get(), POLLIN, deadline, "reading from"); !s) return s;
      continue;
    }
    if (errno == ECONNRESET) return Status(Code::kIo, "the peer closed the attach socket");
    return errno_status("recv on the attach socket");
  }
  return Status::ok();
}

Result<Message> Channel::receive(std::chrono::milliseconds limit) {
  if (!is_open()) return Status(Code::kIo, "the attach socket is closed");
  const auto deadline = Clock::now() + limit;
  if (Status s = wait_fd(sock_.get(), POLLIN, deadline, "waiting for a message on"); !s) return s;
  // The header comes with the fds (the sender attaches them to its first byte).
  uint8_t head[kHeaderSize];
  Message m;
  size_t got = 0;
  while (got == 0) {
    iovec iov{head, kHeaderSize};
    alignas(cmsghdr) char control[CMSG_SPACE(sizeof(int) * kMaxFds)];
    msghdr mh{};
    mh.msg_iov = &iov;
    mh.msg_iovlen = 1;
    mh.msg_control = control;
    mh.msg_controllen = sizeof(control);
    ssize_t r = ::recvmsg(sock_.get(), &mh, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
    if (r < 0 && errno == EINTR) continue;
    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (Status s = wait_fd(sock_.get(), POLLIN, deadline, "reading from"); !s) return s;
      continue;
    }
    if (r < 0 && errno == ECONNRESET) return Status(Code::kIo, "the peer closed the attach socket");
    if (r < 0) return errno_status("recvmsg on the attach socket");
    if (r == 0) return Status(Code::kIo, "the peer closed the attach socket");
    for (cmsghdr* c = CMSG_FIRSTHDR(&mh); c != nullptr; c = CMSG_NXTHDR(&mh, c)) {
      if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS) continue;
      const size_t n = (c->cmsg_len - CMSG_LEN(0)) / sizeof(int);
      for (size_t i = 0; i < n; ++i) {
        int fd;
        std::memcpy(&fd, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
        m.fds.emplace_back(fd);
      }
    }
    if (mh.msg_flags & MSG_CTRUNC) {
      close();
      return Status(Code::kProtocol, "a message carried more than " + std::to_string(kMaxFds) +
                                         " file descriptors");
    }
    got = static_cast<size_t>(r);
  }
  if (Status s = read_exact(head + got, kHeaderSize - got, deadline, false); !s) return s;
  Result<Header> h = decode_header(View(head, kHeaderSize));
  if (!h) {
    close();  // framing is lost: nothing after this can be trusted
    return h.status();
  }
  m.type = h->type;
  m.id = h->id;
  m.payload.resize(h->length);
  if (Status s = read_exact(m.payload.data(), m.payload.size(), deadline, false); !s) {
    close();
    return s;
  }
  const size_t want = fds_expected(m.type, m.payload);
  if (m.fds.size() != want)
    return Status(Code::kProtocol, type_name(static_cast<uint16_t>(m.type)) + " carried " +
                                       std::to_string(m.fds.size()) +
                                       " file descriptors, needs " + std::to_string(want));
  return m;
}

void Channel::send_error(uint32_t id, const Status& s) {
  (void)send(MsgType::kError, id, encode(ErrorBody{s.code(), s.message()}), {},
             std::chrono::milliseconds(500));
}

}  // namespace tern::attach
