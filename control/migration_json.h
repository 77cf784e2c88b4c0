// The JSON shapes of the migration API (QEMU's QMP names), built from the engine's structs in
// dataplane/migration.h and the guest's VerifyReport (vm/self_check.h), and parsed back from QMP
// arguments. Pure functions; no I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/dirty_limit.h"
#include "dataplane/histogram.h"
#include "dataplane/migration.h"
#include "dataplane/status.h"
#include "vm/self_check.h"  // VerifyReport (a plain struct: no link dependency on vm/)

namespace tern::control {

using Json = nlohmann::json;

// QMP status names ("none", "setup", "active", "postcopy-active", "device", "completed",
// "failed", "cancelling", "cancelled"). Kept here so the control library links without the
// engine; it matches tern::status_name().
const char* qmp_status_name(MigrationStatus s);
std::optional<MigrationStatus> parse_qmp_status(const std::string& name);
bool is_terminal_status(const std::string& name);  // completed, failed, cancelled

// The query-migrate reply: QEMU's MigrationInfo shape plus tern's extension members
// (control/qmp_names.h: transport, fault latency, and in "ram" urgent pages, preemptions...).
// Status "none" yields {} (as QEMU before any migration). "error-desc" is present only when failed.
Json query_migrate_json(const MigrationInfo& info);

// {"unit": "us", "buckets": [{"le": 1, "count": n}, ...], "count", "p50", "p99", "max", "mean"}:
// bucket "le" is the bucket's upper bound in microseconds; buckets run up to the last non-empty
// one; p50/p99 are bucket upper bounds (0 when empty); max and mean are exact (us, one decimal).
Json fault_latency_json(const LatencyHistogram::Snapshot& s);

// {"pages-checked", "mismatches", "touched-checked", "touched-mismatches", "first-mismatch"?,
//  "first-touch-latency"? (a fault_latency_json histogram, when the guest checked any touch)}
Json verify_json(const VerifyReport& r);

// Capabilities tern knows, in QMP order ("events" first: QMP's, not the engine's).
std::vector<std::string> capability_names();
// [{"capability": "postcopy-ram", "state": false}, ...], with "events" first when given.
Json capabilities_json(const MigrationCapabilities& caps, std::optional<bool> events = {});
// query-vcpu-dirty-limit: [{"cpu-index", "limit-rate", "current-rate", ext::kPenaltyUs}].
Json dirty_limit_json(const std::vector<VcpuDirtyLimit>& limits);
// Applies a migrate-set-capabilities "capabilities" array onto `caps`. All or nothing: on any
// error `caps` is untouched and the message names the offending entry. "events" (QEMU's: send
// MIGRATION events) goes to `*events`; without `events` it is an unknown capability.
Status apply_capabilities(const Json& list, MigrationCapabilities& caps, bool* events = nullptr);

// Parameters tern knows: QEMU's "multifd-channels", "max-bandwidth", "downtime-limit",
// "vcpu-dirty-limit", "x-vcpu-dirty-limit-period", and tern's ext::kChunkSize, kWorkers, kMaxRounds.
std::vector<std::string> parameter_names();
Json parameters_json(const MigrationParameters& params);
// Applies migrate-set-parameters arguments onto `params`; all or nothing, like the above.
Status apply_parameters(const Json& args, MigrationParameters& params);

}  // namespace tern::control
