#include "vm/workload.h"

#include <charconv>
#include <cmath>
#include <cstdio>

namespace tern {
namespace {

std::string_view trim(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

Status bad(std::string_view key, std::string_view value, std::string_view expected) {
  return Status(Code::kInvalidArgument, "workload: bad value '" + std::string(value) + "' for '" +
                                            std::string(key) + "' (expected " +
                                            std::string(expected) + ")");
}

bool parse_u64(std::string_view s, uint64_t& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size();
}

bool parse_double(std::string_view s, double& out) {
  if (s.empty()) return false;
  auto [p, ec] = std::from_chars(s.data(), s.data() + s.size(), out);
  return ec == std::errc() && p == s.data() + s.size() && std::isfinite(out);
}

// "25%" -> 25. Accepts a trailing '%' or none.
bool parse_percent(std::string_view s, uint64_t& out) {
  if (!s.empty() && s.back() == '%') s.remove_suffix(1);
  return parse_u64(s, out) && out <= 100;
}

}  // namespace

const char* pattern_name(Pattern p) {
  switch (p) {
    case Pattern::kSequential: return "sequential";
    case Pattern::kRandom: return "random";
    case Pattern::kHotset: return "hotset";
  }
  return "?";
}

Result<uint64_t> parse_size(std::string_view text) {
  std::string_view s = trim(text);
  size_t digits = 0;
  while (digits < s.size() && s[digits] >= '0' && s[digits] <= '9') ++digits;
  uint64_t n = 0;
  if (!parse_u64(s.substr(0, digits), n))
    return Status(Code::kInvalidArgument, "bad size '" + std::string(text) + "'");
  std::string_view unit = s.substr(digits);
  int shift = 0;
  if (!unit.empty()) {
    switch (unit[0] | 0x20) {  // lower case
      case 'k': shift = 10; break;
      case 'm': shift = 20; break;
      case 'g': shift = 30; break;
      case 't': shift = 40; break;
      case 'b': shift = 0; break;
      default: return Status(Code::kInvalidArgument, "bad size '" + std::string(text) + "'");
    }
    std::string_view rest = unit.substr(1);
    if (shift != 0 && (rest == "" || rest == "B" || rest == "b" || rest == "iB" || rest == "ib")) {
    } else if (!(shift == 0 && rest.empty())) {
      return Status(Code::kInvalidArgument, "bad size '" + std::string(text) + "'");
    }
  }
  if (shift && (n >> (64 - shift)) != 0)
    return Status(Code::kInvalidArgument, "size '" + std::string(text) + "' overflows");
  return n << shift;
}

std::string format_bytes(uint64_t bytes) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  int u = 0;
  uint64_t v = bytes;
  while (u < 4 && v >= 1024 && v % 1024 == 0) {
    v /= 1024;
    ++u;
  }
  return std::to_string(v) + " " + kUnits[u];
}

Result<WorkloadSpec> parse_workload(std::string_view text) {
  WorkloadSpec spec;
  std::string_view rest = text;
  while (!rest.empty()) {
    size_t comma = rest.find(',');
    std::string_view item = trim(rest.substr(0, comma));
    rest = comma == std::string_view::npos ? std::string_view() : rest.substr(comma + 1);
    if (item.empty()) continue;
    size_t eq = item.find('=');
    if (eq == std::string_view::npos)
      return Status(Code::kInvalidArgument,
                    "workload: item '" + std::string(item) + "' is not key=value");
    std::string_view key = trim(item.substr(0, eq));
    std::string_view val = trim(item.substr(eq + 1));
    uint64_t n = 0;
    if (key == "vcpus") {
      if (!parse_u64(val, n) || n == 0 || n > 256) return bad(key, val, "1..256");
      spec.vcpus = static_cast<uint32_t>(n);
    } else if (key == "ram") {
      auto r = parse_size(val);
      if (!r || *r == 0) return bad(key, val, "a size such as 1G or 512M");
      spec.ram_bytes = *r;
    } else if (key == "backing") {
      if (val == "anon") spec.backing = RamBacking::kAnonymous;
      else if (val == "memfd") spec.backing = RamBacking::kMemfd;
      else return bad(key, val, "anon or memfd");
    } else if (key == "page") {
      auto r = parse_size(val);
      if (!r || (*r != kSmallPage && *r != kHugePage)) return bad(key, val, "4K or 2M");
      spec.page_size = static_cast<uint32_t>(*r);
    } else if (key == "wss") {
      double f = 0;
      if (!val.empty() && val.back() == '%') {
        if (!parse_double(val.substr(0, val.size() - 1), f) || f <= 0 || f > 100)
          return bad(key, val, "a percentage in (0, 100]");
        spec.wss_fraction = f / 100.0;
        spec.wss_bytes = 0;
      } else if (val.find('.') != std::string_view::npos) {
        if (!parse_double(val, f) || f <= 0 || f > 1) return bad(key, val, "a fraction in (0, 1]");
        spec.wss_fraction = f;
        spec.wss_bytes = 0;
      } else {
        auto r = parse_size(val);
        if (!r || *r == 0) return bad(key, val, "25%, 0.25 or a size such as 256M");
        spec.wss_bytes = *r;
      }
    } else if (key == "rate") {
      if (!parse_u64(val, n) || n > 100'000'000) return bad(key, val, "pages/s per vCPU, 0 = max");
      spec.rate = n;
    } else if (key == "pattern") {
      if (val == "sequential" || val == "seq") spec.pattern = Pattern::kSequential;
      else if (val == "random") spec.pattern = Pattern::kRandom;
      else if (val == "hotset" || val == "hot") spec.pattern = Pattern::kHotset;
      else return bad(key, val, "sequential, random or hotset");
    } else if (key == "hot") {
      size_t slash = val.find('/');
      uint64_t w = 0, s = 0;
      if (slash == std::string_view::npos || !parse_percent(val.substr(0, slash), w) ||
          !parse_percent(val.substr(slash + 1), s) || s == 0)
        return bad(key, val, "W/S percentages, e.g. 90/10");
      spec.hot_write_pct = static_cast<uint32_t>(w);
      spec.hot_set_pct = static_cast<uint32_t>(s);
    } else if (key == "read") {
      if (!parse_percent(val, n)) return bad(key, val, "a percentage 0..100");
      spec.read_pct = static_cast<uint32_t>(n);
    } else if (key == "readers") {
      if (!parse_u64(val, n) || n > 256) return bad(key, val, "a number of vCPUs 0..256");
      spec.readers = static_cast<uint32_t>(n);
    } else if (key == "seed") {
      if (!parse_u64(val, n)) return bad(key, val, "an unsigned number");
      spec.seed = n;
    } else if (key == "ring") {
      if (!parse_u64(val, n) || n < 16 || n > 65536 || (n & (n - 1)) != 0)
        return bad(key, val, "a power of two in 16..65536");
      spec.ring_entries = static_cast<uint32_t>(n);
    } else if (key == "free") {
      if (!parse_percent(val, n)) return bad(key, val, "a percentage 0..100");
      spec.free_pct = static_cast<uint32_t>(n);
    } else if (key == "reuse") {
      if (!parse_percent(val, n)) return bad(key, val, "a percentage 0..100");
      spec.reuse_pct = static_cast<uint32_t>(n);
    } else {
      return Status(Code::kInvalidArgument,
                    "workload: unknown key '" + std::string(key) +
                        "' (known: vcpus, ram, page, wss, rate, pattern, hot, read, readers, seed, "
                        "ring, free, reuse)");
    }
  }
  if (Status s = spec.validate(); !s) return s;
  return spec;
}

Status WorkloadSpec::validate() const {
  auto invalid = [](std::string msg) { return Status(Code::kInvalidArgument, "workload: " + msg); };
  if (vcpus == 0 || vcpus > 256) return invalid("'vcpus' must be 1..256");
  if (page_size != kSmallPage && page_size != kHugePage) return invalid("'page' must be 4K or 2M");
  if (ram_bytes == 0 || ram_bytes % page_size != 0)
    return invalid("'ram' (" + std::to_string(ram_bytes) + " bytes) must be a multiple of the " +
                   format_bytes(page_size) + " page size");
  // The version table takes ram/1024 bytes; at least one data page per vCPU must remain.
  uint64_t pages = ram_bytes / kSmallPage;
  uint64_t table = (pages + 1023) / 1024;
  if (pages <= table || pages - table < vcpus)
    return invalid("'ram' " + format_bytes(ram_bytes) + " is too small for " +
                   std::to_string(vcpus) + " vCPUs");
  if (wss_bytes == 0 && !(wss_fraction > 0 && wss_fraction <= 1))
    return invalid("'wss' fraction must be in (0, 1]");
  if (wss_bytes != 0 && wss_bytes > ram_bytes)
    return invalid("'wss' " + format_bytes(wss_bytes) + " is larger than 'ram'");
  if (hot_write_pct > 100 || hot_set_pct == 0 || hot_set_pct > 100)
    return invalid("'hot' must be W/S with W in 0..100 and S in 1..100");
  if (read_pct > 100) return invalid("'read' must be 0..100%");
  if (readers >= vcpus)
    return invalid("'readers' (" + std::to_string(readers) + ") must leave at least one of the " +
                   std::to_string(vcpus) + " vCPUs writing");
  if (ring_entries < 16 || ring_entries > 65536 || (ring_entries & (ring_entries - 1)))
    return invalid("'ring' must be a power of two in 16..65536");
  if (free_pct > 100) return invalid("'free' must be 0..100%");
  if (reuse_pct > 100) return invalid("'reuse' must be 0..100%");
  return Status::ok();
}

std::string WorkloadSpec::to_string() const {
  std::string wss;
  if (wss_bytes) {
    wss = std::to_string(wss_bytes);
  } else {
    char buf[64];
    std::snprintf(buf, sizeof buf, "%.17g", wss_fraction);
    wss = buf;
    if (wss.find('.') == std::string::npos) wss = wss == "1" ? "100%" : wss + ".0";
  }
  return "vcpus=" + std::to_string(vcpus) + ",ram=" + std::to_string(ram_bytes) +
         ",page=" + (page_size == kHugePage ? "2M" : "4K") + ",wss=" + wss +
         ",rate=" + std::to_string(rate) + ",pattern=" + pattern_name(pattern) +
         ",hot=" + std::to_string(hot_write_pct) + "/" + std::to_string(hot_set_pct) +
         ",read=" + std::to_string(read_pct) + "%,readers=" + std::to_string(readers) +
         ",seed=" + std::to_string(seed) +
         ",ring=" + std::to_string(ring_entries) +
         // Only when set: the canonical form of a spec without a heap is what it always was.
         (free_pct ? ",free=" + std::to_string(free_pct) + "%" : std::string()) +
         (reuse_pct ? ",reuse=" + std::to_string(reuse_pct) + "%" : std::string()) +
         (backing == RamBacking::kMemfd ? ",backing=memfd" : "");
}

std::string WorkloadSpec::describe() const {
  std::string wss = wss_bytes ? format_bytes(wss_bytes)
                              : format_bytes(static_cast<uint64_t>(
                                    static_cast<double>(ram_bytes / kSmallPage) * wss_fraction) *
                                             kSmallPage);
  std::string s = "threads: " + std::to_string(vcpus) + (vcpus == 1 ? " vCPU, " : " vCPUs, ") +
                  format_bytes(ram_bytes) + ", " + (page_size == kHugePage ? "2M" : "4K") +
                  " pages, wss " + wss + ", " + pattern_name(pattern);
  if (pattern == Pattern::kHotset)
    s += " " + std::to_string(hot_write_pct) + "/" + std::to_string(hot_set_pct);
  s += rate ? ", " + std::to_string(rate) + " pages/s/vCPU" : std::string(", max rate");
  if (read_pct) s += ", " + std::to_string(read_pct) + "% reads";
  if (readers) s += ", " + std::to_string(readers) + " read-only vCPU" + (readers == 1 ? "" : "s");
  if (free_pct) s += ", " + std::to_string(free_pct) + "% freed";
  if (reuse_pct) s += ", " + std::to_string(reuse_pct) + "% heap churn";
  if (backing == RamBacking::kMemfd) s += ", memfd RAM";
  return s;
}

}  // namespace tern
