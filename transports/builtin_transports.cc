#include "transports/builtin_transports.h"

#include <cstdio>
#include <mutex>

#include "dataplane/transport.h"
#include "dataplane/transport/loopback.h"
#include "dataplane/transport/tcp.h"
// An optional transport's meson.build defines TERN_HAVE_<NAME> in its dependency when it is built.
#ifdef TERN_HAVE_RDMA
#include "rdma/rdma_transport.h"
#endif
#ifdef TERN_HAVE_DPDK
#include "dpdk/dpdk_transport.h"
#endif

namespace tern {
namespace {

void add(TransportRegistration r) {
  const std::string name = r.name;
  // Only a program that registered a transport of the same name itself gets here; its own wins.
  if (Status s = register_transport(std::move(r)); !s.is_ok())
    std::fprintf(stderr, "tern: built-in transport '%s' not registered: %s\n", name.c_str(),
                 s.to_string().c_str());
}

}  // namespace

void register_builtin_transports() {
  static std::once_flag once;
  std::call_once(once, [] {
    // One line per transport, in the order of preference for the default.
#ifdef TERN_HAVE_RDMA
    add(rdma_transport_registration());
#endif
#ifdef TERN_HAVE_DPDK
    add(dpdk_transport_registration());
#endif
    add(tcp_transport_registration());
    add(loopback_transport_registration());
  });
}

}  // namespace tern
