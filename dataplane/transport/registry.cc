// Transport registry: the transports a program registered, created by name, and the default
// choice (design section 4). It names no transport: which ones exist, and in which order the
// default prefers them, is up to whoever registers them (transports/builtin_transports.cc).
#include <mutex>

#include "dataplane/transport.h"

namespace tern {
namespace {

struct Registry {
  std::mutex mu;
  std::vector<TransportRegistration> entries;  // guarded by mu; registration order
};

// Never destroyed, so that a transport created during static destruction still finds it.
Registry& registry() {
  static auto* r = new Registry;
  return *r;
}

bool valid_name(const std::string& name) {
  if (name.empty()) return false;
  for (char c : name)
    if (!(c >= 'a' && c <= 'z') && !(c >= '0' && c <= '9')) return false;
  return true;
}

std::string joined(const std::vector<std::string>& names) {
  std::string s;
  for (const std::string& n : names) s += (s.empty() ? "" : ", ") + n;
  return s;
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
  if (!valid_name(p.transport))
    return Status(Code::kInvalidArgument, "transport name '" + p.transport + "' in URI '" +
                                              uri + "' is not lowercase letters and digits");
  // loopback: the default name; dpdk: a memif listener on a fresh socket (destination only).
  if (p.transport != "loopback" && p.transport != "dpdk" && p.address.empty())
    return Status(Code::kInvalidArgument,
                  "URI '" + uri + "' has no address after '" + p.transport + ":'");
  return p;
}

Status register_transport(TransportRegistration r) {
  if (!valid_name(r.name))
    return Status(Code::kInvalidArgument,
                  "transport name '" + r.name + "' is not lowercase letters and digits");
  if (!r.create)
    return Status(Code::kInvalidArgument, "transport '" + r.name + "' registered without a factory");
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  for (const TransportRegistration& e : reg.entries)
    if (e.name == r.name)
      return Status(Code::kUnavailable, "transport '" + r.name + "' is already registered");
  reg.entries.push_back(std::move(r));
  return Status::ok();
}

std::vector<std::string> transport_names() {
  Registry& reg = registry();
  std::lock_guard<std::mutex> lock(reg.mu);
  std::vector<std::string> v;
  for (const TransportRegistration& e : reg.entries) v.push_back(e.name);
  return v;
}

Result<std::unique_ptr<Transport>> create_transport(std::string_view name) {
  std::function<std::unique_ptr<Transport>()> create;
  {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mu);
    for (const TransportRegistration& e : reg.entries)
      if (e.name == name) create = e.create;
  }
  if (create) return create();
  const std::vector<std::string> names = transport_names();
  return Status(Code::kNotFound,
                "no transport '" + std::string(name) +
                    "' in this program (unknown, or not built into it); available: " +
                    (names.empty() ? "none (the program registered no transport at start)"
                                   : joined(names)));
}

TransportAvailability prepare_transport(std::string_view name) {
  std::function<TransportAvailability()> available;
  bool known = false;
  {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mu);
    for (const TransportRegistration& e : reg.entries)
      if (e.name == name) known = true, available = e.available;
  }
  if (!known) return {false, create_transport(name).status().message()};
  if (!available) return {true, "nothing to prepare"};
  return available();  // outside the lock: it may be slow
}

DefaultTransport choose_default_transport() {
  // Copied out first: availability checks may take a while (dpdk starts its EAL).
  std::vector<std::pair<std::string, std::function<TransportAvailability()>>> candidates;
  {
    Registry& reg = registry();
    std::lock_guard<std::mutex> lock(reg.mu);
    for (const TransportRegistration& e : reg.entries)
      if (e.available) candidates.emplace_back(e.name, e.available);
  }
  std::vector<std::string> order;
  for (const auto& c : candidates) order.push_back(c.first);
  const std::string tail = " (in order of preference: " + joined(order) + ")";
  std::string passed_over;
  for (const auto& [name, available] : candidates) {
    TransportAvailability a = available();
    if (a.usable) return {name, passed_over + a.reason + tail};
    passed_over += a.reason + "; ";
  }
  if (candidates.empty())
    return {"", "no registered transport can be chosen by default (none registered with an "
                "availability check)"};
  return {"", passed_over + "none of the registered transports can run here" + tail};
}

}  // namespace tern
