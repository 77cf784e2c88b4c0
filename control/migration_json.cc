#include "control/migration_json.h"

#include <cmath>

#include "control/qmp_names.h"
#include "control/qmp_protocol.h"
#include "control/qmp_stream.h"

namespace tern::control {
namespace {

double one_decimal(double v) { return std::round(v * 10.0) / 10.0; }

std::string join(const std::vector<std::string>& names) {
  std::string out;
  for (const auto& n : names) out += (out.empty() ? "" : ", ") + n;
  return out;
}

struct ParamSpec {
  const char* name;
  uint64_t min;
  uint64_t max;
};

// Limits a user can act on; the engine re-checks what it depends on.
constexpr ParamSpec kParams[] = {
    {"multifd-channels", 1, 64},
    {"max-bandwidth", 0, UINT64_MAX},
    {"downtime-limit", 1, 2'000'000},
    {ext::kChunkSize, 4096, 2u << 20},
    {ext::kWorkers, 0, 256},
    {ext::kMaxRounds, 1, 100'000},
    {"vcpu-dirty-limit", 1, 1'000'000},
    {"x-vcpu-dirty-limit-period", 10, 60'000},
    {ext::kPostcopyPeerTimeout, 500, 3'600'000},
    {ext::kHandshakeTimeout, 500, 3'600'000},
    {ext::kZeroCopySmallPages, 0, 1},
    {ext::kPageIntegrity, 0, 1},
};

}  // namespace

// QMP's names are the engine's own.
const char* qmp_status_name(MigrationStatus s) { return status_name(s); }

std::optional<MigrationStatus> parse_qmp_status(const std::string& name) {
  for (int i = 0; i <= static_cast<int>(kLastStatus); ++i) {
    auto s = static_cast<MigrationStatus>(i);
    if (name == qmp_status_name(s)) return s;
  }
  return std::nullopt;
}

bool is_terminal_status(const std::string& name) {
  return name == "completed" || name == "failed" || name == "cancelled";
}

Json fault_latency_json(const LatencyHistogram::Snapshot& s) {
  Json buckets = Json::array();
  int last = -1;
  for (int i = 0; i < LatencyHistogram::kBuckets; ++i) {
    if (s.counts[i] != 0) last = i;
  }
  for (int i = 0; i <= last; ++i) {
    buckets.push_back(
        {{"le", LatencyHistogram::Snapshot::bucket_upper_us(i)}, {"count", s.counts[i]}});
  }
  double mean = s.total ? static_cast<double>(s.sum_ns) / 1000.0 / static_cast<double>(s.total) : 0;
  return {{"unit", "us"},
          {"buckets", buckets},
          {"count", s.total},
          {"p50", s.quantile_us(0.50)},
          {"p99", s.quantile_us(0.99)},
          {"max", one_decimal(static_cast<double>(s.max_ns) / 1000.0)},
          {"mean", one_decimal(mean)}};
}

Json verify_json(const VerifyReport& r) {
  Json j = {{"pages-checked", r.pages_checked},
            {"mismatches", r.mismatches},
            {"touched-checked", r.touched_checked},
            {"touched-mismatches", r.touched_mismatches}};
  if (!r.first_mismatch.empty()) j["first-mismatch"] = r.first_mismatch;
  if (r.first_touch_latency.total != 0)
    j["first-touch-latency"] = fault_latency_json(r.first_touch_latency);
  return j;
}

Json query_migrate_json(const MigrationInfo& info) {
  if (info.status == MigrationStatus::kNone) return Json::object();  // as QEMU
  Json j = {{"status", qmp_status_name(info.status)}};
  const MigrationStats& s = info.stats;
  j["total-time"] = s.total_time;
  j["setup-time"] = s.setup_time;
  j["downtime"] = s.downtime;
  j["expected-downtime"] = s.expected_downtime;
  j["ram"] = {
      {"transferred", s.transferred},
      {"remaining", s.remaining},
      {"total", s.total},
      {"duplicate", s.duplicate},
      {"normal", s.normal},
      {"normal-bytes", s.normal_bytes},
      {"dirty-pages-rate", s.dirty_pages_rate},
      {"mbps", one_decimal(s.mbps)},
      {"dirty-sync-count", s.dirty_sync_count},
      {"postcopy-requests", s.postcopy_requests},
      {"precopy-bytes", s.precopy_bytes},
      {"postcopy-bytes", s.postcopy_bytes},
      {"page-size", 4096},
      {ext::kUrgentPages, s.urgent_pages},
      {ext::kPreemptions, s.preemptions},
      {ext::kRaisedRequests, s.raised_requests},
      {ext::kDiscardedPages, s.discarded_pages},
      // S5 (ext::kFreePageHint), target pages: reported free by the guest, skipped unsent
      // because free, hint ranges refused.
      {ext::kFreePageHints, s.free_page_hints},
      {ext::kFreePagesSkipped, s.free_pages_skipped},
      {ext::kFreePageHintsRefused, s.free_page_hints_refused},
      {ext::kZeroCopyPages, s.zero_copy_pages},
  };
  if (info.status == MigrationStatus::kFailed) {
    j["error-desc"] = info.error.empty() ? "migration failed (no reason given)" : info.error;
  }
  if (info.status == MigrationStatus::kPostcopyPaused && !info.error.empty())
    j["error-desc"] = info.error;  // why the link broke
  if (s.postcopy_pauses) {
    j[ext::kPostcopyRecovery] = {{"pauses", s.postcopy_pauses},
                                {"recoveries", s.postcopy_recoveries},
                                {"missing-pages", s.recovery_missing_pages}};
  }
  if (s.dirty_limit_active) {
    j["dirty-limit-throttle-time-per-round"] = s.dirty_limit_throttle_time_per_round;
    j["dirty-limit-ring-full-time"] = s.dirty_limit_ring_full_time;
  }
  j[ext::kSwitchoverForced] = s.switchover_forced;
  j[ext::kPostcopyFaultLatency] = fault_latency_json(info.fault_latency);
  j[ext::kTransport] = info.transport;
  // How the channels are protected (docs/security.md): "psk" (every channel authenticated
  // both ways with the pre-shared key, control frames sealed), "tls" (TLS 1.3 with x509, mutual),
  // "tls+psk" (both), or "none" (ternd --insecure).
  const bool tls = !info.encryption.empty();
  j[ext::kChannelSecurity] = tls ? (info.authenticated ? "tls+psk" : "tls")
                                 : (info.authenticated ? "psk" : "none");
  if (tls) j[ext::kChannelEncryption] = info.encryption;
  j[ext::kPageIntegrity] = info.page_integrity;  // a tag per page frame, checked
  return j;
}

std::vector<std::string> capability_names() {
  return {"events", "postcopy-ram", "postcopy-preempt", "dirty-limit", ext::kFreePageHint};
}

Json capabilities_json(const MigrationCapabilities& caps, std::optional<bool> events) {
  Json list = Json::array();
  if (events) list.push_back({{"capability", "events"}, {"state", *events}});
  list.push_back({{"capability", "postcopy-ram"}, {"state", caps.postcopy_ram}});
  list.push_back({{"capability", "postcopy-preempt"}, {"state", caps.postcopy_preempt}});
  list.push_back({{"capability", "dirty-limit"}, {"state", caps.dirty_limit}});
  list.push_back({{"capability", ext::kFreePageHint}, {"state", caps.free_page_hint}});
  return list;
}

Json dirty_limit_json(const std::vector<VcpuDirtyLimit>& limits) {
  Json list = Json::array();
  for (const VcpuDirtyLimit& v : limits)
    list.push_back({{"cpu-index", v.cpu_index},
                    {"limit-rate", v.limit_rate},
                    {"current-rate", v.current_rate},
                    {ext::kPenaltyUs, v.penalty_us}});
  return list;
}

Status apply_capabilities(const Json& list, MigrationCapabilities& caps, bool* events) {
  if (!list.is_array()) {
    return {Code::kInvalidArgument,
            "'capabilities' must be an array of {\"capability\": NAME, \"state\": BOOL}"};
  }
  MigrationCapabilities next = caps;
  std::optional<bool> next_events;
  for (size_t i = 0; i < list.size(); ++i) {
    const Json& e = list[i];
    std::string where = "capabilities[" + std::to_string(i) + "]";
    if (!e.is_object() || !e.contains("capability") || !e.contains("state")) {
      return {Code::kInvalidArgument,
              where + " must be an object {\"capability\": NAME, \"state\": BOOL}"};
    }
    if (!e["capability"].is_string()) {
      return {Code::kInvalidArgument, where + ".capability must be a string"};
    }
    if (!e["state"].is_boolean()) {
      return {Code::kInvalidArgument, where + ".state must be a boolean"};
    }
    std::string name = e["capability"];
    bool state = e["state"];
    if (name == "postcopy-ram") {
      next.postcopy_ram = state;
    } else if (name == "postcopy-preempt") {
      next.postcopy_preempt = state;
    } else if (name == "dirty-limit") {
      next.dirty_limit = state;
    } else if (name == ext::kFreePageHint) {
      next.free_page_hint = state;
    } else if (name == "events" && events != nullptr) {
      next_events = state;
    } else {
      return {Code::kInvalidArgument,
              "unknown capability '" + utf8_truncate(name, 64) + "'" + ext::renamed_hint(name) +
                  "; known capabilities: " + join(capability_names())};
    }
  }
  if (next.postcopy_preempt && !next.postcopy_ram) {
    return {Code::kInvalidArgument, "postcopy-preempt requires postcopy-ram to be on as well"};
  }
  caps = next;
  if (next_events) *events = *next_events;
  return Status::ok();
}

// QEMU's string parameters of TLS (docs/cli.md).
constexpr const char* kTlsParams[] = {"tls-creds", "tls-hostname", "tls-authz"};

std::vector<std::string> parameter_names() {
  std::vector<std::string> names;
  for (const auto& p : kParams) names.emplace_back(p.name);
  for (const char* p : kTlsParams) names.emplace_back(p);
  return names;
}

namespace {

// One of the TLS parameters into `next`; ids are checked against the catalog ternd defined.
Status apply_tls_parameter(const std::string& key, const Json& value, MigrationParameters& next) {
  if (!value.is_string())
    return {Code::kInvalidArgument,
            "parameter '" + key + "' must be a string, got " + json_excerpt(value)};
  const std::string v = value.get<std::string>();
  const TlsCatalog* cat = next.tls_catalog.get();
  auto defined = [](const auto& m) {
    std::string s;
    for (const auto& [id, x] : m) s += (s.empty() ? "" : ", ") + id;
    return s.empty() ? std::string("none") : s;
  };
  if (key == "tls-creds") {
    if (!v.empty() && (cat == nullptr || !cat->creds.count(v)))
      return {Code::kInvalidArgument,
              "tls-creds '" + utf8_truncate(v, 64) + "' is not a credential set of this ternd "
              "(defined: " + (cat ? defined(cat->creds) : std::string("none")) +
              "; ternd --tls-creds DIR defines tls0; a directory path is not accepted)"};
    if (v.empty() && cat != nullptr && cat->required)
      return {Code::kInvalidArgument,
              "tls-creds cannot be cleared: TLS is this ternd's only authentication (start it "
              "with --auth-key-file or --insecure to migrate without TLS)"};
    next.tls.creds = v;
  } else if (key == "tls-authz") {
    if (!v.empty() && (cat == nullptr || !cat->authz.count(v)))
      return {Code::kInvalidArgument,
              "tls-authz '" + utf8_truncate(v, 64) + "' is not an allow-list of this ternd "
              "(defined: " + (cat ? defined(cat->authz) : std::string("none")) +
              "; ternd --tls-authz-file FILE defines authz0)"};
    next.tls.authz = v;
  } else {
    next.tls.hostname = v;
  }
  return Status::ok();
}

}  // namespace

Json parameters_json(const MigrationParameters& p) {
  return {{"multifd-channels", p.multifd_channels},
          {"max-bandwidth", p.max_bandwidth},
          {"downtime-limit", p.downtime_limit_ms},
          {ext::kChunkSize, p.chunk_size},
          {ext::kWorkers, p.workers},
          {ext::kMaxRounds, p.max_rounds},
          {"vcpu-dirty-limit", p.vcpu_dirty_limit},
          {"x-vcpu-dirty-limit-period", p.vcpu_dirty_limit_period_ms},
          {ext::kPostcopyPeerTimeout, p.postcopy_peer_timeout.count()},
          {ext::kHandshakeTimeout, p.connect_timeout.count()},
          {ext::kZeroCopySmallPages, p.zero_copy_small_pages ? 1 : 0},
          {ext::kPageIntegrity, p.page_integrity},
          {"tls-creds", p.tls.creds},
          {"tls-hostname", p.tls.hostname},
          {"tls-authz", p.tls.authz}};
}

Status apply_parameters(const Json& args, MigrationParameters& params) {
  if (!args.is_object()) return {Code::kInvalidArgument, "arguments must be an object"};
  MigrationParameters next = params;
  for (const auto& [key, value] : args.items()) {
    if (key == "tls-creds" || key == "tls-hostname" || key == "tls-authz") {
      if (Status s = apply_tls_parameter(key, value, next); !s.is_ok()) return s;
      continue;
    }
    const ParamSpec* spec = nullptr;
    for (const auto& p : kParams) {
      if (key == p.name) spec = &p;
    }
    if (spec == nullptr) {
      return {Code::kInvalidArgument,
              "unknown parameter '" + utf8_truncate(key, 64) + "'" + ext::renamed_hint(key) +
                  "; known parameters: " + join(parameter_names())};
    }
    if (key == ext::kPageIntegrity && value.is_boolean()) {  // a boolean, or 0 / 1 below
      next.page_integrity = value.get<bool>();
      continue;
    }
    if (!value.is_number_unsigned() && !(value.is_number_integer() && value.get<int64_t>() >= 0)) {
      return {Code::kInvalidArgument,
              "parameter '" + key + "' must be a non-negative integer, got " + json_excerpt(value)};
    }
    uint64_t v = value.get<uint64_t>();
    if (v < spec->min || v > spec->max) {
      return {Code::kInvalidArgument,
              "parameter '" + key + "' must be in [" + std::to_string(spec->min) + ", " +
                  std::to_string(spec->max) + "], got " + std::to_string(v)};
    }
    if (key == "multifd-channels") {
      next.multifd_channels = static_cast<uint32_t>(v);
    } else if (key == "max-bandwidth") {
      next.max_bandwidth = v;
    } else if (key == "downtime-limit") {
      next.downtime_limit_ms = v;
    } else if (key == ext::kChunkSize) {
      if (v % 4096 != 0 || (v & (v - 1)) != 0) {
        return {Code::kInvalidArgument,
                "parameter '" + key + "' must be a power of two multiple of 4096, got " +
                    std::to_string(v)};
      }
      next.chunk_size = static_cast<uint32_t>(v);
    } else if (key == ext::kWorkers) {
      next.workers = static_cast<uint32_t>(v);
    } else if (key == ext::kMaxRounds) {
      next.max_rounds = static_cast<uint32_t>(v);
    } else if (key == "vcpu-dirty-limit") {
      next.vcpu_dirty_limit = v;
    } else if (key == "x-vcpu-dirty-limit-period") {
      next.vcpu_dirty_limit_period_ms = v;
    } else if (key == ext::kPostcopyPeerTimeout) {
      next.postcopy_peer_timeout = std::chrono::milliseconds(v);
    } else if (key == ext::kHandshakeTimeout) {
      next.connect_timeout = std::chrono::milliseconds(v);
    } else if (key == ext::kZeroCopySmallPages) {
      next.zero_copy_small_pages = v != 0;
    } else if (key == ext::kPageIntegrity) {
      next.page_integrity = v != 0;
    }
  }
  params = next;
  return Status::ok();
}

}  // namespace tern::control
