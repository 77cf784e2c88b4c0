// QMP steps the fault cases share: status polling with a bound, the destination's page check,
// the source's own check of its guest, and a retry migration. Each takes the case name for
// its failure messages. Test thread only.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "control/qmp_client.h"

namespace tern::fault {

using control::Json;
using control::QmpClient;

// query-migrate's reply ({} while idle), or {"status": "no answer: WHY"} when QMP did not
// answer within 5 s.
Json query_migrate(QmpClient& c);
// query-migrate's status: "none" while idle.
std::string status_of(const Json& q);
// In progress: the migration may still move pages (not none, completed, failed, cancelled).
bool in_progress(const std::string& status);

// Polls `c` every 10 ms until `done(query-migrate reply)` or `bound`; returns the last reply
// and sets `*met` to whether `done` held.
Json poll_until(QmpClient& c, const std::function<bool(const Json&)>& done,
                std::chrono::milliseconds bound, bool* met);

// What one page check found.
struct PageCheck {
  uint64_t checked = 0;
  uint64_t bad = 0;  // mismatches + bad first touches
};

// The destination's check of the migrated guest (made at completion); a test failure naming
// `what` when it is missing or found bad pages.
PageCheck verify_destination(QmpClient& d, const std::string& what);
// The source's own check of its guest after a failed migration: the guest must be running and
// every page intact.
PageCheck verify_source_intact(QmpClient& s, const std::string& what);

// Resets the source's migration settings to plain precopy at full speed (ternd's defaults: no
// bandwidth cap, downtime 300 ms, 30 rounds, 10 s handshake), migrates to the
// destination behind `d` (its query-incoming URI mapped through `to_source_uri`) and expects
// both sides to complete and every page to verify. Returns the destination's check.
PageCheck retry_migration(QmpClient& s, QmpClient& d,
                          const std::function<std::string(const std::string&)>& to_source_uri,
                          const std::string& what);

}  // namespace tern::fault
