#include "dpdk/detail/unix_listener.h"

#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <linux/sock_diag.h>
#include <linux/unix_diag.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>

namespace tern::dpdk {
namespace {

// The socket's name: an abstract name comes with its leading NUL.
bool name_is(const unix_diag_msg* m, int len, const std::string& path) {
  for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len)) {
    if (a->rta_type != UNIX_DIAG_NAME) continue;
    const char* n = static_cast<const char*>(RTA_DATA(a));
    size_t nlen = RTA_PAYLOAD(a);
    if (nlen > 0 && n[0] == '\0') ++n, --nlen;
    while (nlen > 0 && n[nlen - 1] == '\0') --nlen;  // a path's terminating NUL
    return std::string(n, nlen) == path;
  }
  return false;
}

int rqlen(const unix_diag_msg* m, int len) {
  for (auto* a = reinterpret_cast<const rtattr*>(m + 1); RTA_OK(a, len); a = RTA_NEXT(a, len))
    if (a->rta_type == UNIX_DIAG_RQLEN)
      return static_cast<int>(static_cast<const unix_diag_rqlen*>(RTA_DATA(a))->udiag_rqueue);
  return 0;
}

}  // namespace

int unix_accept_queue(const std::string& path) {
  const int fd = ::socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_SOCK_DIAG);
  if (fd < 0) return -1;
  struct {
    nlmsghdr nlh;
    unix_diag_req req;
  } q{};
  q.nlh.nlmsg_len = sizeof q;
  q.nlh.nlmsg_type = SOCK_DIAG_BY_FAMILY;
  q.nlh.nlmsg_flags = NLM_F_REQUEST | NLM_F_DUMP;
  q.req.sdiag_family = AF_UNIX;
  q.req.udiag_states = 1u << TCP_LISTEN;
  q.req.udiag_show = UDIAG_SHOW_NAME | UDIAG_SHOW_RQLEN;
  int found = -1;
  if (::send(fd, &q, sizeof q, 0) == static_cast<ssize_t>(sizeof q)) {
    alignas(nlmsghdr) char buf[16384];
    for (bool more = true; more;) {
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      int left = static_cast<int>(n);
      for (auto* h = reinterpret_cast<nlmsghdr*>(buf); NLMSG_OK(h, left); h = NLMSG_NEXT(h, left)) {
        if (h->nlmsg_type == NLMSG_DONE || h->nlmsg_type == NLMSG_ERROR) {
          more = false;
          break;
        }
        const auto* m = static_cast<const unix_diag_msg*>(NLMSG_DATA(h));
        const int len = static_cast<int>(h->nlmsg_len - NLMSG_LENGTH(sizeof *m));
        if (found < 0 && name_is(m, len, path)) found = rqlen(m, len);
      }
    }
  }
  ::close(fd);
  return found;
}

}  // namespace tern::dpdk
