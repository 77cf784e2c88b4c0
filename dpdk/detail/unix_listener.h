// Whether a unix listening socket (a memif server's, by its path or abstract name) exists, and
// how many connections wait in its accept queue: the kernel's sock_diag (NETLINK_SOCK_DIAG,
// UDIAG_SHOW_RQLEN), in this network namespace. Plain Linux, no DPDK.
//
// Threads: any (each call opens its own netlink socket).
#pragma once

#include <string>

namespace tern::dpdk {

// -1: nothing listens on `path` (or the kernel would not say); else the connections that the
// listener has not accepted yet.
int unix_accept_queue(const std::string& path);

}  // namespace tern::dpdk
