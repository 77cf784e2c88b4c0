// MigrationHost over the real engine (dataplane/migration.h): a source hosting a running guest,
// or a destination that builds its guest from the incoming RAM layout and, once the migration
// completes, checks every page of it (vm/self_check.h) before it forwards the `completed` event;
// query-guest waits for that check.
//
// Threads: the MigrationHost methods run on ternd's QMP thread; status callbacks arrive on
// engine threads and are forwarded to the sink as they come. The destination's completion check
// runs on the engine thread that reports `completed`, or on the QMP thread if a query-guest
// comes first; check_mu_ makes it run once.
#pragma once

#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "control/migration_host.h"
#include "dataplane/guest.h"
#include "dataplane/migration.h"
#include "vm/self_check.h"

namespace tern::control {

class EngineHost : public MigrationHost {
 public:
  // Source: takes the guest (already running or not; it is started here if not).
  static Result<std::unique_ptr<EngineHost>> source(std::unique_ptr<Guest> guest);
  // Destination: `factory` builds the guest when a source sends its layout.
  static std::unique_ptr<EngineHost> destination(GuestFactory factory);
  ~EngineHost() override;

  Role role() const override { return role_; }
  Status migrate(const std::string& uri, const MigrationCapabilities& caps,
                 const MigrationParameters& params) override;
  Result<std::string> migrate_incoming(const std::string& uri,
                                       const MigrationParameters& params) override;
  Status start_postcopy() override;
  Status cancel() override;
  Status pause_postcopy() override;
  Result<std::string> recover(const std::string& uri) override;
  Status resume(const std::string& uri) override;
  MigrationInfo info() const override;
  std::string incoming_uri() const override { return incoming_uri_; }
  Result<GuestInfo> guest_info(bool verify) override;
  Status set_vcpu_dirty_limit(std::optional<uint32_t> cpu, uint64_t mbps) override;
  Status cancel_vcpu_dirty_limit(std::optional<uint32_t> cpu) override;
  Result<std::vector<VcpuDirtyLimit>> query_vcpu_dirty_limit() const override;
  std::vector<std::string> transports() const override;
  DefaultTransport default_transport() const override;
  void set_status_sink(StatusSink sink) override;

  // Shutdown: ends the current migrations in any state (telling the peers) and waits for
  // them; no-op when none.
  void cancel_and_wait();
  // Source: where a next guest comes from once the current one is lost (Guest::failure(): a
  // VMM that died); `migrate` then takes it (nullptr: none yet) instead of failing. Before
  // the QMP server runs; called on the QMP thread.
  void set_next_guest(std::function<std::unique_ptr<Guest>()> next) { next_guest_ = std::move(next); }

 private:
  explicit EngineHost(Role role) : role_(role) {}
  std::shared_ptr<Guest> guest();
  void forward(MigrationStatus s, const std::string& detail);
  // Destination: the check of every page once `in` has completed (the first call runs it).
  void check_completed(IncomingMigration& in);

  const Role role_;
  Status dirty_limit_usable() const;

  // Used by engine threads (status callbacks): declared before out_ and in_, so that they
  // outlive the threads, which those two join when destroyed.
  std::mutex sink_mu_;
  StatusSink sink_;  // guarded by sink_mu_
  std::mutex check_mu_;
  std::optional<VerifyReport> verification_;  // the latest full check; guarded by check_mu_
  bool completion_checked_ = false;           // destination; guarded by check_mu_

  // Replaces a lost source guest by next_guest_'s, if it has one (QMP thread).
  Status replace_lost_guest();

  std::unique_ptr<Guest> guest_;            // source only; replaced only by replace_lost_guest
  std::function<std::unique_ptr<Guest>()> next_guest_;  // source only
  std::unique_ptr<DirtyLimiter> limiter_;   // source only; outlives out_, which borrows it
  GuestFactory factory_;                    // destination only
  std::unique_ptr<OutgoingMigration> out_;  // the current or last outgoing migration
  std::unique_ptr<IncomingMigration> in_;   // the (one) incoming migration
  std::string incoming_uri_;
};

}  // namespace tern::control
