// ternd's command table: turns QMP requests into MigrationHost calls and the replies into
// QEMU-shaped JSON. Owns the capabilities and parameters set through QMP.
//
// Threads: dispatch() runs on the QMP thread only.
#pragma once

#include <functional>
#include <map>
#include <string>
#include <vector>

#include "control/migration_host.h"
#include "control/qmp_protocol.h"

namespace tern::control {

class QmpCommands {
 public:
  // `quit` is called by the "quit" command after its reply is built (the daemon stops its
  // server there). `host` must outlive this object.
  QmpCommands(MigrationHost& host, MigrationParameters initial_params, std::function<void()> quit);

  // The reply for one request (never throws): {"return": ...} or {"error": ...}.
  Json dispatch(const Request& request);
  // Command names in alphabetical order, including qmp_capabilities.
  std::vector<std::string> command_names() const;

  const MigrationCapabilities& capabilities() const { return caps_; }
  const MigrationParameters& parameters() const { return params_; }

 private:
  using Handler = Result<Json> (QmpCommands::*)(const ArgReader& args);
  Result<Json> cmd_migrate(const ArgReader& args);
  Result<Json> cmd_migrate_incoming(const ArgReader& args);
  Result<Json> cmd_query_migrate(const ArgReader& args);
  Result<Json> cmd_query_incoming(const ArgReader& args);
  Result<Json> cmd_set_capabilities(const ArgReader& args);
  Result<Json> cmd_query_capabilities(const ArgReader& args);
  Result<Json> cmd_set_parameters(const ArgReader& args);
  Result<Json> cmd_query_parameters(const ArgReader& args);
  Result<Json> cmd_start_postcopy(const ArgReader& args);
  Result<Json> cmd_cancel(const ArgReader& args);
  Result<Json> cmd_query_guest(const ArgReader& args);
  Result<Json> cmd_set_dirty_limit(const ArgReader& args);
  Result<Json> cmd_cancel_dirty_limit(const ArgReader& args);
  Result<Json> cmd_query_dirty_limit(const ArgReader& args);
  Result<Json> cmd_query_transports(const ArgReader& args);
  Result<Json> cmd_query_commands(const ArgReader& args);
  Result<Json> cmd_quit(const ArgReader& args);

  MigrationHost& host_;
  MigrationCapabilities caps_;
  MigrationParameters params_;
  std::function<void()> quit_;
  std::map<std::string, Handler> table_;
};

}  // namespace tern::control
