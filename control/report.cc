#include "control/report.h"

#include <cstdio>

#include "control/qmp_names.h"

namespace tern::control {
namespace {

uint64_t u64(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key)) return 0;
  const Json& v = j[key];
  if (v.is_number_unsigned()) return v.get<uint64_t>();
  if (v.is_number_integer()) return static_cast<uint64_t>(std::max<int64_t>(0, v.get<int64_t>()));
  if (v.is_number_float()) return static_cast<uint64_t>(std::max(0.0, v.get<double>()));
  return 0;
}

double f64(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_number()) return 0;
  return j[key].get<double>();
}

std::string str(const Json& j, const char* key) {
  if (!j.is_object() || !j.contains(key) || !j[key].is_string()) return "";
  return j[key].get<std::string>();
}

const Json& ram_of(const Json& qm) {
  static const Json kEmpty = Json::object();
  return qm.is_object() && qm.contains("ram") ? qm["ram"] : kEmpty;
}

std::string pages(uint64_t n, uint64_t bytes) {
  return std::to_string(n) + " (" + format_bytes(bytes) + ")";
}

std::string count_of(const Json& j, const char* key) { return std::to_string(u64(j, key)); }

// Bytes moved over the whole migration per second of total time.
std::string average_rate(const Json& qm) {
  uint64_t ms = u64(qm, "total-time");
  if (ms == 0) return format_rate(0);
  return format_rate(static_cast<double>(u64(ram_of(qm), "transferred")) * 1000.0 /
                     static_cast<double>(ms));
}

// query-migrate's __io.github.tern_channel-security (and page-integrity) in words.
std::string security_words(const std::string& mode, const std::string& encryption,
                           bool page_integrity) {
  const std::string how = "encrypted (" + (encryption.empty() ? "TLS" : encryption) + ")";
  const std::string tags = page_integrity ? "; every page checked against its tag" : "";
  // rdma, dpdk: x509 keys the sealed control channel; no TLS record carries the pages.
  const bool pages_in_clear = encryption.find("page data in clear") != std::string::npos;
  const std::string sealed_only =
      "; control channel encrypted and integrity-protected (AES-256-GCM, keys from a TLS 1.3 "
      "handshake); page data in clear" +
      std::string(page_integrity ? ", integrity-protected (a tag per page, checked before use)"
                                 : "");
  if (mode == "tls")
    return "authenticated (x509)" + (pages_in_clear ? sealed_only : ", " + how + tags);
  if (mode == "tls+psk")
    return "authenticated (x509 and pre-shared key)" +
           (pages_in_clear ? sealed_only : ", " + how + tags);
  if (mode == "psk")
    return "authenticated (pre-shared key); control channel encrypted and integrity-protected "
           "(AES-256-GCM); page data in clear" +
           std::string(page_integrity
                           ? ", integrity-protected (a tag per page, checked before use)"
                           : "");
  if (mode == "none") return "NOT authenticated, not encrypted (--insecure)";
  return mode;
}

}  // namespace

Progress progress_from(const Json& qm) {
  const Json& ram = ram_of(qm);
  Progress p;
  p.status = str(qm, "status");
  p.transferred = u64(ram, "transferred");
  p.remaining = u64(ram, "remaining");
  p.total = u64(ram, "total");
  p.bytes_per_second = f64(ram, "mbps") * 1e6 / 8.0;
  p.elapsed_ms = u64(qm, "total-time");
  return p;
}

std::string describe_fault_latency(const Json& lat) {
  uint64_t count = u64(lat, "count");
  if (count == 0) return "no postcopy faults";
  char buf[160];
  std::snprintf(buf, sizeof buf, "%llu faults, p50 <= %llu us, p99 <= %llu us, max %.1f us",
                static_cast<unsigned long long>(count),
                static_cast<unsigned long long>(u64(lat, "p50")),
                static_cast<unsigned long long>(u64(lat, "p99")), f64(lat, "max"));
  return buf;
}

std::string render_query_migrate(const Json& qm) {
  Rows rows;
  // QEMU (and ternd) answer {} before any migration: show that as "none".
  rows.push_back({"status", qm.contains("status") ? str(qm, "status") : "none"});
  if (qm.contains(ext::kIncomingUri)) rows.push_back({"incoming uri", str(qm, ext::kIncomingUri)});
  if (str(qm, "status") == "none" || !qm.contains("ram")) return format_table(rows);
  if (!str(qm, ext::kTransport).empty()) rows.push_back({"transport", str(qm, ext::kTransport)});
  if (qm.contains(ext::kChannelSecurity))
    rows.push_back({"security", security_words(str(qm, ext::kChannelSecurity),
                                               str(qm, ext::kChannelEncryption),
                                               qm.value(ext::kPageIntegrity, false))});
  if (qm.contains("error-desc"))
    rows.push_back({str(qm, "status") == "postcopy-paused" ? "paused because" : "error",
                    str(qm, "error-desc")});
  if (qm.contains(ext::kPostcopyRecovery)) {
    const Json& r = qm[ext::kPostcopyRecovery];
    rows.push_back({"postcopy pauses", count_of(r, "pauses")});
    rows.push_back({"recoveries", count_of(r, "recoveries")});
    rows.push_back({"missing at resume", count_of(r, "missing-pages") + " host pages"});
  }
  rows.push_back({"total time", format_duration_ms(u64(qm, "total-time"))});
  rows.push_back({"setup time", format_duration_ms(u64(qm, "setup-time"))});
  rows.push_back({"downtime", format_duration_ms(u64(qm, "downtime"))});
  rows.push_back({"expected downtime", format_duration_ms(u64(qm, "expected-downtime"))});
  const Json& ram = ram_of(qm);
  rows.push_back({"ram:", ""});
  rows.push_back({"  transferred", format_bytes(u64(ram, "transferred"))});
  rows.push_back({"  remaining", format_bytes(u64(ram, "remaining"))});
  rows.push_back({"  total", format_bytes(u64(ram, "total"))});
  rows.push_back({"  throughput", format_rate(f64(ram, "mbps") * 1e6 / 8.0)});
  rows.push_back({"  normal pages", pages(u64(ram, "normal"), u64(ram, "normal-bytes"))});
  rows.push_back({"  zero pages", count_of(ram, "duplicate")});
  rows.push_back({"  dirty pages rate", count_of(ram, "dirty-pages-rate") + " pages/s"});
  rows.push_back({"  dirty syncs", count_of(ram, "dirty-sync-count")});
  rows.push_back({"  precopy bytes", format_bytes(u64(ram, "precopy-bytes"))});
  rows.push_back({"  postcopy bytes", format_bytes(u64(ram, "postcopy-bytes"))});
  rows.push_back({"  postcopy requests", count_of(ram, "postcopy-requests")});
  rows.push_back({"  urgent pages", count_of(ram, ext::kUrgentPages)});
  rows.push_back({"  preemptions", count_of(ram, ext::kPreemptions)});
  rows.push_back({"  raised requests", count_of(ram, ext::kRaisedRequests)});
  rows.push_back({"  discarded pages", count_of(ram, ext::kDiscardedPages)});
  if (u64(ram, ext::kFreePageHints) != 0) {
    rows.push_back({"  free page hints", count_of(ram, ext::kFreePageHints)});
    rows.push_back({"  free pages skipped", count_of(ram, ext::kFreePagesSkipped)});
    rows.push_back({"  free hints refused", count_of(ram, ext::kFreePageHintsRefused)});
  }
  if (qm.contains(ext::kPostcopyFaultLatency)) {
    rows.push_back(
        {"postcopy fault latency", describe_fault_latency(qm[ext::kPostcopyFaultLatency])});
  }
  return format_table(rows);
}

Json make_summary(const Json& source_qm, const Json& destination_qm, const Json& guest,
                  const std::string& uri, const std::string& transport_reason) {
  Json verification = Json::object();
  if (guest.is_object() && guest.contains("verification")) {
    verification = guest["verification"];
    verification["full-check"] = true;
  } else if (guest.is_object() && guest.contains("counters")) {
    verification = guest["counters"];
    verification["full-check"] = false;
  }
  bool ok = verification.contains("pages-checked") && u64(verification, "mismatches") == 0 &&
            u64(verification, "touched-mismatches") == 0;
  verification["ok"] = ok;
  Json transport = {{"name", str(source_qm, ext::kTransport)}};
  if (transport["name"] == "") transport["name"] = str(destination_qm, ext::kTransport);
  if (!uri.empty()) transport["uri"] = uri;
  if (!transport_reason.empty()) transport["reason"] = transport_reason;
  if (source_qm.contains(ext::kChannelSecurity))
    transport["security"] = str(source_qm, ext::kChannelSecurity);
  if (source_qm.contains(ext::kChannelEncryption))
    transport["encryption"] = str(source_qm, ext::kChannelEncryption);
  transport["page-integrity"] = source_qm.value(ext::kPageIntegrity, false);
  return {{"source", source_qm},
          {"destination", destination_qm},
          {"verification", verification},
          {"transport", transport}};
}

bool summary_ok(const Json& summary, std::string* why) {
  auto fail = [&](std::string reason) {
    if (why) *why = std::move(reason);
    return false;
  };
  for (const char* side : {"source", "destination"}) {
    const Json& qm = summary.contains(side) ? summary[side] : Json::object();
    std::string st = str(qm, "status");
    if (st != "completed") {
      std::string reason = std::string(side) + " status is '" + st + "'";
      if (qm.contains("error-desc")) reason += ": " + str(qm, "error-desc");
      return fail(reason);
    }
  }
  const Json& v = summary.contains("verification") ? summary["verification"] : Json::object();
  if (!v.contains("pages-checked")) return fail("the destination reported no page verification");
  uint64_t bad = u64(v, "mismatches") + u64(v, "touched-mismatches");
  if (bad != 0) {
    std::string reason = std::to_string(bad) + " page mismatches";
    if (v.contains("first-mismatch")) reason += " (first: " + str(v, "first-mismatch") + ")";
    return fail(reason);
  }
  return true;
}

std::string render_summary(const Json& s) {
  const Json& src = s["source"];
  const Json& dst = s["destination"];
  const Json& sram = ram_of(src);
  const Json& dram = ram_of(dst);
  std::vector<std::vector<std::string>> grid = {
      {"", "source", "destination"},
      {"status", str(src, "status"), str(dst, "status")},
      {"total time", format_duration_ms(u64(src, "total-time")),
       format_duration_ms(u64(dst, "total-time"))},
      {"setup time", format_duration_ms(u64(src, "setup-time")),
       format_duration_ms(u64(dst, "setup-time"))},
      {"downtime", format_duration_ms(u64(src, "downtime")),
       format_duration_ms(u64(dst, "downtime"))},
      {"transferred", format_bytes(u64(sram, "transferred")),
       format_bytes(u64(dram, "transferred"))},
      {"ram total", format_bytes(u64(sram, "total")), format_bytes(u64(dram, "total"))},
      {"avg throughput", average_rate(src), average_rate(dst)},
      {"normal pages", count_of(sram, "normal"), count_of(dram, "normal")},
      {"zero pages", count_of(sram, "duplicate"), count_of(dram, "duplicate")},
      {"dirty syncs", count_of(sram, "dirty-sync-count"), count_of(dram, "dirty-sync-count")},
      {"precopy bytes", format_bytes(u64(sram, "precopy-bytes")),
       format_bytes(u64(dram, "precopy-bytes"))},
      {"postcopy bytes", format_bytes(u64(sram, "postcopy-bytes")),
       format_bytes(u64(dram, "postcopy-bytes"))},
      {"postcopy requests", count_of(sram, "postcopy-requests"),
       count_of(dram, "postcopy-requests")},
      {"preemptions", count_of(sram, ext::kPreemptions), count_of(dram, ext::kPreemptions)},
  };
  std::string out;
  const Json& t = s["transport"];
  out += "migration summary: transport " + str(t, "name");
  if (t.contains("uri")) out += " (" + str(t, "uri") + ")";
  if (t.contains("security"))
    out += ", " + security_words(str(t, "security"), str(t, "encryption"),
                                 t.value("page-integrity", false));
  out += "\n";
  out += format_grid(grid);
  // Faults happen on the destination; the source's histogram is empty.
  const Json& lat =
      dst.contains(ext::kPostcopyFaultLatency) ? dst[ext::kPostcopyFaultLatency] : Json::object();
  out += "postcopy fault latency: " + describe_fault_latency(lat) + "\n";
  const Json& v = s["verification"];
  out += "page verification: ";
  if (v.contains("pages-checked")) {
    out += std::to_string(u64(v, "pages-checked")) + " pages checked, " +
           std::to_string(u64(v, "mismatches")) + " mismatches";
    if (u64(v, "touched-checked") > 0) {
      out += "; first-touch: " + std::to_string(u64(v, "touched-checked")) + " checked, " +
             std::to_string(u64(v, "touched-mismatches")) + " mismatches";
    }
    if (v.contains("first-mismatch")) out += "\n  first mismatch: " + str(v, "first-mismatch");
  } else {
    out += "not available";
  }
  out += "\n";
  std::string why;
  out += summary_ok(s, &why) ? "result: OK\n" : "result: FAILED (" + why + ")\n";
  return out;
}

}  // namespace tern::control
