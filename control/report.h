// ternctl's human views of QMP replies: the query-migrate table, the progress sample, and the
// end-of-migration summary that combines source, destination and page verification (the demo's
// final output). Pure functions over JSON; no I/O.
#pragma once

#include <nlohmann/json.hpp>
#include <string>

#include "control/format.h"

namespace tern::control {

using Json = nlohmann::json;

// A query-migrate reply as an aligned table (sizes in MiB/GiB, rates in MB/s).
std::string render_query_migrate(const Json& qm);
// Progress sample from a query-migrate reply. The rate is ram.mbps converted to bytes/s.
Progress progress_from(const Json& qm);
// "1234 faults, p50 <= 16 us, p99 <= 64 us, max 80.2 us", or "no postcopy faults".
std::string describe_fault_latency(const Json& latency);

// The summary object: {"source": qm, "destination": qm, "verification": {...},
// "transport": {...}}. `verification` is query-guest's "verification" (or "counters" when no
// full check ran) with "ok" added; `transport` is {"name", "uri"?, "reason"?}.
Json make_summary(const Json& source_qm, const Json& destination_qm, const Json& guest,
                  const std::string& uri, const std::string& transport_reason);
// True when both sides completed and no page mismatched; otherwise `why` says what failed.
bool summary_ok(const Json& summary, std::string* why);
// Side-by-side table of the summary, the fault latency line and the verification line.
std::string render_summary(const Json& summary);

}  // namespace tern::control
