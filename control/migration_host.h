// What the QMP commands drive: the daemon's one guest and its migrations. EngineHost
// (engine_host.h) implements it over OutgoingMigration / IncomingMigration; tests may provide
// their own implementation with the same contracts.
//
// Threads: every method is called from the daemon's main (QMP) thread. The status callback
// given to set_status_sink() may run on engine threads.
#pragma once

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/dirty_limit.h"
#include "dataplane/migration.h"
#include "dataplane/status.h"
#include "dataplane/transport.h"
#include "vm/self_check.h"  // VerifyReport (a plain struct: no link dependency on vm/)

namespace tern::control {

enum class Role { kSource, kDestination };
inline const char* role_name(Role r) { return r == Role::kSource ? "source" : "destination"; }

struct GuestInfo {
  bool present = false;     // destination: false until the RAM layout has arrived
  std::string description;  // Guest::describe()
  bool running = false;
  VerifyReport counters;    // SelfCheck::verify_counters(): first-touch checks so far
  // The full check of every page (check_guest, vm/self_check.h): on a destination, the one run
  // when the migration completed, or the latest asked for.
  std::optional<VerifyReport> verification;
};

class MigrationHost {
 public:
  virtual ~MigrationHost() = default;
  virtual Role role() const = 0;

  // Source: starts migrating the guest to `uri`. Fails if a migration is under way or the
  // guest already migrated away; a failed or cancelled migration may be retried.
  virtual Status migrate(const std::string& uri, const MigrationCapabilities& caps,
                         const MigrationParameters& params) = 0;
  // Destination: listens on `uri`; returns the URI a source should use (port 0 resolved).
  virtual Result<std::string> migrate_incoming(const std::string& uri,
                                               const MigrationParameters& params) = 0;
  virtual Status start_postcopy() = 0;
  virtual Status cancel() = 0;
  // Postcopy recovery. pause_postcopy (QMP migrate-pause, either side) breaks the link on
  // purpose: both sides go to postcopy-paused. recover (migrate-recover, destination, when
  // postcopy-paused) listens on `uri` for the source's resume and returns the URI to use.
  // resume (migrate with resume=true, source, when postcopy-paused) connects to it.
  virtual Status pause_postcopy() = 0;
  virtual Result<std::string> recover(const std::string& uri) = 0;
  virtual Status resume(const std::string& uri) = 0;
  // The current (or last) migration; status kNone when there was none.
  virtual MigrationInfo info() const = 0;
  // Destination: the URI being listened on ("" when not listening).
  virtual std::string incoming_uri() const = 0;
  // `verify`: run a full check of every page now (destination, after completion only).
  virtual Result<GuestInfo> guest_info(bool verify) = 0;

  // Dirty limit (S4) of the source guest (QMP set/cancel/query-vcpu-dirty-limit): one vCPU, or
  // all when `cpu` is empty; rates in MB/s. Refused on a destination, for a guest without a
  // dirty ring, and while a migration's dirty-limit capability holds the limit.
  virtual Status set_vcpu_dirty_limit(std::optional<uint32_t> cpu, uint64_t mbps) = 0;
  virtual Status cancel_vcpu_dirty_limit(std::optional<uint32_t> cpu) = 0;
  virtual Result<std::vector<VcpuDirtyLimit>> query_vcpu_dirty_limit() const = 0;

  // Transports compiled in, and the one used when a URI names none.
  virtual std::vector<std::string> transports() const = 0;
  virtual DefaultTransport default_transport() const = 0;

  // Called on every status change with the new status and a detail (error text when failed).
  using StatusSink = std::function<void(MigrationStatus, const std::string& detail)>;
  virtual void set_status_sink(StatusSink sink) = 0;
};

}  // namespace tern::control
