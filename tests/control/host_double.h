// A MigrationHost for command-layer tests: a small state machine with the engine's contracts
// (migrate only from none/failed/cancelled, postcopy only from active with postcopy-ram, cancel
// always succeeds, port 0 resolved on listen), and the status sink called on every change.
#pragma once

#include <string>
#include <vector>

#include "control/migration_host.h"

namespace tern::control {

class HostDouble : public MigrationHost {
 public:
  explicit HostDouble(Role role) : role_(role) {}

  Role role() const override { return role_; }
  Status migrate(const std::string& uri, const MigrationCapabilities& caps,
                 const MigrationParameters& params) override {
    if (info_.status != MigrationStatus::kNone && !is_done()) {
      return {Code::kInvalidArgument, "there's a migration process in progress"};
    }
    if (uri.rfind("tcp:", 0) != 0) return {Code::kNotFound, "unknown transport in " + uri};
    caps_ = caps;
    params_ = params;
    last_uri_ = uri;
    info_.transport = "tcp";
    set(MigrationStatus::kActive);
    return Status::ok();
  }
  Result<std::string> migrate_incoming(const std::string& uri,
                                       const MigrationParameters& params) override {
    params_ = params;
    incoming_ = uri.substr(0, uri.rfind(':')) + ":40111";
    return incoming_;
  }
  Status start_postcopy() override {
    if (!caps_.postcopy_ram) return {Code::kInvalidArgument, "postcopy-ram is not enabled"};
    set(MigrationStatus::kPostcopyActive);
    return Status::ok();
  }
  Status cancel() override {
    if (info_.status != MigrationStatus::kNone && !is_done()) set(MigrationStatus::kCancelled);
    return Status::ok();
  }
  // Postcopy recovery, as the engine: pause from postcopy-active, recover (destination) and
  // resume (source) from postcopy-paused only.
  Status pause_postcopy() override {
    if (info_.status != MigrationStatus::kPostcopyActive)
      return {Code::kInvalidArgument, "migrate-pause works in postcopy only"};
    set(MigrationStatus::kPostcopyPaused);
    return Status::ok();
  }
  Result<std::string> recover(const std::string& uri) override {
    if (info_.status != MigrationStatus::kPostcopyPaused)
      return Status(Code::kInvalidArgument, "migrate-recover needs a postcopy-paused migration");
    incoming_ = uri;
    return uri;
  }
  Status resume(const std::string& uri) override {
    if (info_.status != MigrationStatus::kPostcopyPaused)
      return {Code::kInvalidArgument, "resume needs a postcopy-paused migration"};
    last_uri_ = uri;
    set(MigrationStatus::kPostcopyActive);
    return Status::ok();
  }
  MigrationInfo info() const override { return info_; }
  std::string incoming_uri() const override { return incoming_; }
  Result<GuestInfo> guest_info(bool verify) override {
    GuestInfo g;
    g.present = true;
    g.description = "double: 1 vCPU, 64 MiB";
    g.running = true;
    if (verify) g.verification = VerifyReport{16384, 0, 0, 0, ""};
    return g;
  }
  // Dirty limit: a guest of two vCPUs with a ring, as the engine host's contract.
  Status set_vcpu_dirty_limit(std::optional<uint32_t> cpu, uint64_t mbps) override {
    if (role_ != Role::kSource) return {Code::kInvalidArgument, "destination"};
    if (cpu && *cpu >= 2) return {Code::kInvalidArgument, "cpu-index out of range"};
    if (mbps == 0) return {Code::kInvalidArgument, "dirty-rate must be at least 1"};
    for (uint32_t i = 0; i < 2; ++i)
      if (!cpu || *cpu == i) limits_[i] = mbps;
    return Status::ok();
  }
  Status cancel_vcpu_dirty_limit(std::optional<uint32_t> cpu) override {
    if (role_ != Role::kSource) return {Code::kInvalidArgument, "destination"};
    if (cpu && *cpu >= 2) return {Code::kInvalidArgument, "cpu-index out of range"};
    for (uint32_t i = 0; i < 2; ++i)
      if (!cpu || *cpu == i) limits_[i] = 0;
    return Status::ok();
  }
  Result<std::vector<VcpuDirtyLimit>> query_vcpu_dirty_limit() const override {
    if (role_ != Role::kSource) return Status(Code::kInvalidArgument, "destination");
    std::vector<VcpuDirtyLimit> out;
    for (uint32_t i = 0; i < 2; ++i)
      if (limits_[i]) out.push_back({i, limits_[i], limits_[i], 100});
    return out;
  }
  std::vector<std::string> transports() const override { return {"loopback", "tcp"}; }
  DefaultTransport default_transport() const override { return {"tcp", "test double"}; }
  void set_status_sink(StatusSink sink) override { sink_ = std::move(sink); }

  void set(MigrationStatus s) {
    info_.status = s;
    statuses.push_back(s);
    if (sink_) sink_(s, "");
  }
  bool is_done() const {
    return info_.status == MigrationStatus::kCompleted ||
           info_.status == MigrationStatus::kFailed || info_.status == MigrationStatus::kCancelled;
  }

  std::vector<MigrationStatus> statuses;
  MigrationCapabilities caps_;
  MigrationParameters params_;
  std::string last_uri_;

 private:
  Role role_;
  MigrationInfo info_;
  uint64_t limits_[2] = {0, 0};
  std::string incoming_;
  StatusSink sink_;
};

}  // namespace tern::control
