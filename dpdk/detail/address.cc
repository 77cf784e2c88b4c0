#include "dpdk/detail/address.h"

#include <cctype>
#include <charconv>
#include <cstdio>
#include <cstdlib>

namespace tern::dpdk {
namespace {

std::vector<std::string> split(const std::string& s, char sep) {
  std::vector<std::string> out;
  size_t start = 0;
  while (true) {
    size_t p = s.find(sep, start);
    out.push_back(s.substr(start, p == std::string::npos ? std::string::npos : p - start));
    if (p == std::string::npos) return out;
    start = p + 1;
  }
}

bool to_u64(const std::string& v, uint64_t& out) {
  auto [p, ec] = std::from_chars(v.data(), v.data() + v.size(), out);
  return ec == std::errc() && p == v.data() + v.size() && !v.empty();
}

bool to_prob(const std::string& v, double& out) {
  char* end = nullptr;
  out = std::strtod(v.c_str(), &end);
  return !v.empty() && end == v.c_str() + v.size() && out >= 0 && out <= 1;
}

Status bad(const std::string& what) {
  return Status(Code::kInvalidArgument, "dpdk address: " + what);
}

// Applies one tern option; false if `key` is not one.
bool tern_option(const std::string& key, const std::string& v, Address& a, Status& err) {
  uint64_t n = 0;
  double p = 0;
  auto need_u64 = [&](uint64_t lo, uint64_t hi) {
    if (!to_u64(v, n) || n < lo || n > hi)
      err = bad(key + "=" + v + " (need an integer in " + std::to_string(lo) + ".." +
                std::to_string(hi) + ")");
    return err.is_ok();
  };
  auto need_prob = [&]() {
    if (!to_prob(v, p)) err = bad(key + "=" + v + " (need a probability in 0..1)");
    return err.is_ok();
  };
  if (key == "queues") {
    if (need_u64(3, 64)) a.queues = static_cast<uint16_t>(n);
  } else if (key == "window") {
    if (need_u64(8, 4096) && (n & (n - 1)) != 0) err = bad("window=" + v + " (need a power of two)");
    if (err.is_ok()) a.window = static_cast<uint32_t>(n);
  } else if (key == "rto_us") {
    if (need_u64(50, 10000000)) a.rto_us = static_cast<uint32_t>(n);
  } else if (key == "idle_us") {
    if (need_u64(10, 1000000)) a.idle_us = static_cast<uint32_t>(n);
  } else if (key == "zerocopy") {
    if (need_u64(0, 1)) a.zero_copy = n == 1;
  } else if (key == "checksum") {
    if (v == "always" || v == "auto")
      a.checksum_always = v == "always";
    else
      err = bad("checksum=" + v + " (need auto or always)");
  } else if (key == "loss") {
    if (need_prob()) a.faults.loss = p;
  } else if (key == "reorder") {
    if (need_prob()) a.faults.reorder = p;
  } else if (key == "dup") {
    if (need_prob()) a.faults.dup = p;
  } else if (key == "corrupt") {
    if (need_prob()) a.faults.corrupt = p;
  } else if (key == "ep") {
    if (need_u64(1, UINT32_MAX)) a.peer_ep = static_cast<uint32_t>(n);
  } else if (key == "seed") {
    if (need_u64(0, UINT64_MAX)) a.faults.seed = n;
  } else {
    return false;
  }
  return true;
}

}  // namespace

Result<Address> parse_address(const std::string& address) {
  Address a;
  std::vector<std::string> fields = split(address, ',');
  a.device = fields[0];
  if (a.device.empty()) return bad("'" + address + "' names no device (e.g. net_memif0,socket=PATH)");
  for (char c : a.device)
    if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.' || c == ':' ||
          c == '-'))
      return bad("device name '" + a.device + "' has a bad character '" + std::string(1, c) + "'");
  if (a.device.rfind("net_memif", 0) == 0) {
    a.kind = PortKind::kMemif;
  } else if (a.device == "net_ring") {
    a.kind = PortKind::kRingPair;
  } else if (a.device.rfind("net_", 0) == 0) {
    a.kind = PortKind::kVdev;
  } else {
    return bad("device '" + a.device + "' is not a virtual device (net_memif*, net_ring, net_*)");
  }
  for (size_t i = 1; i < fields.size(); ++i) {
    const std::string& f = fields[i];
    size_t eq = f.find('=');
    if (eq == std::string::npos || eq == 0)
      return bad("'" + f + "' in '" + address + "' is not KEY=VALUE");
    std::string key = f.substr(0, eq), v = f.substr(eq + 1);
    Status err;
    if (tern_option(key, v, a, err)) {
      if (!err.is_ok()) return err;
      continue;
    }
    if (key == "role") {
      if (v != "server" && v != "client") return bad("role=" + v + " (server or client)");
      a.role = v;
    } else if (key == "name" && a.kind == PortKind::kRingPair) {
      a.ring_name = v;
    } else {
      a.pmd_args.emplace_back(key, v);
    }
  }
  if (!a.role.empty() && a.kind != PortKind::kMemif) return bad("role= applies to net_memif only");
  if (a.kind == PortKind::kRingPair) {
    if (a.ring_name.empty()) return bad("net_ring needs name=NAME (both ends use the same)");
    if (!a.pmd_args.empty()) return bad("net_ring takes no option '" + a.pmd_args[0].first + "'");
  }
  return a;
}

Status parse_faults(const std::string& spec, FaultConfig& out) {
  if (spec.empty()) return Status::ok();
  Address a;
  a.faults = out;
  for (const std::string& f : split(spec, ',')) {
    size_t eq = f.find('=');
    Status err;
    std::string key = eq == std::string::npos ? f : f.substr(0, eq);
    bool fault_key = key == "loss" || key == "reorder" || key == "dup" || key == "corrupt" ||
                     key == "seed";
    if (eq == std::string::npos || !fault_key)
      return bad("fault option '" + f + "' (loss=P, reorder=P, dup=P, corrupt=P, seed=N)");
    tern_option(key, f.substr(eq + 1), a, err);
    if (!err.is_ok()) return err;
  }
  out = a.faults;
  return Status::ok();
}

std::string Address::pmd_devargs(const std::string& unique, const std::string& r) const {
  std::string s = unique;
  if (kind == PortKind::kMemif) s += ",role=" + r;
  for (const auto& [k, v] : pmd_args) s += "," + k + "=" + v;
  return s;
}

std::string Address::peer_address(const std::string& r) const {
  std::string s = device;
  if (kind == PortKind::kMemif) s += ",role=" + r;
  if (kind == PortKind::kRingPair) s += ",name=" + ring_name;
  for (const auto& [k, v] : pmd_args) s += "," + k + "=" + v;
  s += ",queues=" + std::to_string(queues) + ",window=" + std::to_string(window);
  Address d;
  if (rto_us != d.rto_us) s += ",rto_us=" + std::to_string(rto_us);
  if (idle_us != d.idle_us) s += ",idle_us=" + std::to_string(idle_us);
  if (checksum_always) s += ",checksum=always";
  if (local_ep != 0) s += ",ep=" + std::to_string(local_ep);
  return s;
}

}  // namespace tern::dpdk
