// The two ends of the loopback TCP benchmarks (tcp_rtt_bench, floor_bench), which run their
// sides as two processes: a listener on 127.0.0.1 at a port the kernel picks, and a client.
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

namespace tern {

// A listening socket on 127.0.0.1 (backlog 1); *addr says where. -1 on failure, nothing open.
inline int listen_on_loopback(sockaddr_in* addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  *addr = sockaddr_in{};
  addr->sin_family = AF_INET;
  addr->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t len = sizeof *addr;
  if (fd >= 0 && ::bind(fd, reinterpret_cast<sockaddr*>(addr), sizeof *addr) == 0 &&
      ::listen(fd, 1) == 0 && ::getsockname(fd, reinterpret_cast<sockaddr*>(addr), &len) == 0)
    return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

// A socket connected to `addr`, or -1 (nothing open).
inline int connect_to(const sockaddr_in& addr) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd >= 0 && ::connect(fd, reinterpret_cast<const sockaddr*>(&addr), sizeof addr) == 0)
    return fd;
  if (fd >= 0) ::close(fd);
  return -1;
}

}  // namespace tern
