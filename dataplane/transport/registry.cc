// Transport registry: the transports compiled into this binary, created by name, and the
// default choice (design section 4). rdma and dpdk join under TERN_HAVE_RDMA / TERN_HAVE_DPDK,
// which their meson.build sets in `transport_args` when they are built.
#include <functional>

#include "dataplane/transport.h"
#include "dataplane/transport/loopback.h"
#include "dataplane/transport/tcp.h"
#ifdef TERN_HAVE_RDMA
#include "rdma/rdma_transport.h"
#endif
#ifdef TERN_HAVE_DPDK
#include "dpdk/dpdk_transport.h"
#endif

namespace tern {
namespace {

struct Entry {
  const char* name;
  std::unique_ptr<Transport> (*make)();
};

// In the order the default is chosen in.
const std::vector<Entry>& entries() {
  static const std::vector<Entry> kEntries = {
#ifdef TERN_HAVE_RDMA
      {"rdma", [] { return std::unique_ptr<Transport>(new RdmaTransport()); }},
#endif
#ifdef TERN_HAVE_DPDK
      {"dpdk", [] { return std::unique_ptr<Transport>(new DpdkTransport()); }},
#endif
      {"tcp", [] { return std::unique_ptr<Transport>(new TcpTransport()); }},
      {"loopback", [] { return std::unique_ptr<Transport>(new LoopbackTransport()); }},
  };
  return kEntries;
}

std::string joined_names() {
  std::string s;
  for (const Entry& e : entries()) s += (s.empty() ? "" : ", ") + std::string(e.name);
  return s;
}

bool known_but_absent(std::string_view name) {
  return name == "rdma" || name == "dpdk" || name == "tcp" || name == "loopback";
}

}  // namespace

Result<ParsedUri> parse_uri(const std::string& uri) {
  if (uri.empty()) return Status(Code::kInvalidArgument, "empty migration URI");
  const auto colon = uri.find(':');
  if (colon == std::string::npos)
    return Status(Code::kInvalidArgument, "URI '" + uri + "' has no transport prefix "
                                          "(expected e.g. tcp:HOST:PORT or loopback:)");
  ParsedUri p{uri.substr(0, colon), uri.substr(colon + 1)};
  if (p.transport.empty())
    return Status(Code::kInvalidArgument, "URI '" + uri + "' has an empty transport name");
  for (char c : p.transport)
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9'))
      return Status(Code::kInvalidArgument, "transport name '" + p.transport + "' in URI '" +
                                                uri + "' is not lowercase letters and digits");
  // loopback: the default name; dpdk: a memif listener on a fresh socket (destination only).
  if (p.transport != "loopback" && p.transport != "dpdk" && p.address.empty())
    return Status(Code::kInvalidArgument,
                  "URI '" + uri + "' has no address after '" + p.transport + ":'");
  return p;
}

std::vector<std::string> transport_names() {
  std::vector<std::string> v;
  for (const Entry& e : entries()) v.emplace_back(e.name);
  return v;
}

Result<std::unique_ptr<Transport>> create_transport(std::string_view name) {
  for (const Entry& e : entries())
    if (name == e.name) return e.make();
  std::string why = known_but_absent(name) ? "transport '" + std::string(name) +
                                                 "' is not built into this binary"
                                           : "unknown transport '" + std::string(name) + "'";
  return Status(Code::kNotFound, why + "; available: " + joined_names());
}

DefaultTransport choose_default_transport() {
#ifdef TERN_HAVE_RDMA
  if (rdma_device_present()) return {"rdma", "an RDMA device is present"};
#endif
#ifdef TERN_HAVE_DPDK
  if (Status s = dpdk_can_start(); s.is_ok()) return {"dpdk", "no RDMA device; dpdk can start"};
#endif
#if defined(TERN_HAVE_RDMA) && defined(TERN_HAVE_DPDK)
  return {"tcp", "no RDMA device and dpdk cannot start"};
#elif defined(TERN_HAVE_RDMA)
  return {"tcp", "no RDMA device and the dpdk transport is not built"};
#elif defined(TERN_HAVE_DPDK)
  return {"tcp", "the rdma transport is not built and dpdk cannot start"};
#else
  return {"tcp", "no RDMA device and the dpdk transport is not built"};
#endif
}

}  // namespace tern
