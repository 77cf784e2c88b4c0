// ternd's command table: turns QMP requests into MigrationHost calls and the replies into
// QEMU-shaped JSON. Owns the capabilities and parameters set through QMP. The table also names
// each command's arguments and their types: dispatch() refuses arguments it does not list, and
// query-commands and query-qmp-schema are generated from it (so the schema cannot drift).
//
// Threads: dispatch() runs on the QMP thread only; events_enabled() may be read from any.
#pragma once

#include <atomic>
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
  // query-qmp-schema's reply: QEMU's SchemaInfo list (commands, their argument objects, the
  // MIGRATION event and the builtin types they use).
  Json schema() const;
  // The "events" capability (QEMU's): MIGRATION events go out only while it is on.
  bool events_enabled() const { return events_.load(); }

  const MigrationCapabilities& capabilities() const { return caps_; }
  const MigrationParameters& parameters() const { return params_; }

 private:
  using Handler = Result<Json> (QmpCommands::*)(const ArgReader& args);
  struct ArgSpec {
    std::string name;
    std::string type;  // a schema type: "str", "int", "bool", "[MigrationCapabilityStatus]"
    bool optional = false;
  };
  struct CommandSpec {
    Handler handler;
    std::vector<ArgSpec> args;
    std::string returns;  // kEmpty, kAny or a schema type
  };
  static constexpr const char* kEmpty = "q_empty";  // returns {}
  static constexpr const char* kAny = "any";        // an object described in docs/cli.md

  static Result<Json> check_arguments(const std::vector<ArgSpec>& specs, const Json& args);
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
  Result<Json> cmd_migrate_pause(const ArgReader& args);
  Result<Json> cmd_migrate_recover(const ArgReader& args);
  Result<Json> cmd_query_guest(const ArgReader& args);
  Result<Json> cmd_set_dirty_limit(const ArgReader& args);
  Result<Json> cmd_cancel_dirty_limit(const ArgReader& args);
  Result<Json> cmd_query_dirty_limit(const ArgReader& args);
  Result<Json> cmd_query_transports(const ArgReader& args);
  Result<Json> cmd_query_commands(const ArgReader& args);
  Result<Json> cmd_query_version(const ArgReader& args);
  Result<Json> cmd_query_status(const ArgReader& args);
  Result<Json> cmd_query_qmp_schema(const ArgReader& args);
  Result<Json> cmd_quit(const ArgReader& args);

  MigrationHost& host_;
  MigrationCapabilities caps_;
  MigrationParameters params_;
  std::function<void()> quit_;
  std::atomic<bool> events_{false};
  std::map<std::string, CommandSpec> table_;
};

}  // namespace tern::control
