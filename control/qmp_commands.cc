#include "control/qmp_commands.h"

#include <algorithm>

#include "control/migration_json.h"
#include "control/qmp_stream.h"

namespace tern::control {
namespace {

bool in_progress(MigrationStatus s) {
  return s != MigrationStatus::kNone &&
         !(s == MigrationStatus::kCompleted || s == MigrationStatus::kFailed ||
           s == MigrationStatus::kCancelled);
}

Status wrong_role(const char* command, Role role) {
  if (role == Role::kDestination) {
    return {Code::kInvalidArgument, std::string(command) +
                                        " is a source command; this ternd is a destination "
                                        "(started with --incoming)"};
  }
  return {Code::kInvalidArgument, std::string(command) +
                                      " is a destination command; this ternd is a source "
                                      "(started with --guest)"};
}

}  // namespace

QmpCommands::QmpCommands(MigrationHost& host, MigrationParameters initial_params,
                         std::function<void()> quit)
    : host_(host), params_(initial_params), quit_(std::move(quit)) {
  // The one description of every command: dispatch() checks arguments against it,
  // query-commands and query-qmp-schema are generated from it.
  const std::vector<ArgSpec> none;
  std::vector<ArgSpec> params;
  for (const auto& name : parameter_names()) params.push_back({name, "int", true});
  table_ = {
      {"migrate",
       {&QmpCommands::cmd_migrate,
        {{"uri", "str"}, {"detach", "bool", true}, {"resume", "bool", true}},
        kEmpty}},
      {"migrate-pause", {&QmpCommands::cmd_migrate_pause, none, kEmpty}},
      {"migrate-recover", {&QmpCommands::cmd_migrate_recover, {{"uri", "str"}}, kEmpty}},
      {"migrate-incoming", {&QmpCommands::cmd_migrate_incoming, {{"uri", "str"}}, kAny}},
      {"query-migrate", {&QmpCommands::cmd_query_migrate, none, kAny}},
      {"query-incoming", {&QmpCommands::cmd_query_incoming, none, kAny}},
      {"migrate-set-capabilities",
       {&QmpCommands::cmd_set_capabilities,
        {{"capabilities", "[MigrationCapabilityStatus]"}},
        kEmpty}},
      {"query-migrate-capabilities",
       {&QmpCommands::cmd_query_capabilities, none, "[MigrationCapabilityStatus]"}},
      {"migrate-set-parameters", {&QmpCommands::cmd_set_parameters, params, kEmpty}},
      {"query-migrate-parameters", {&QmpCommands::cmd_query_parameters, none, kAny}},
      {"migrate-start-postcopy", {&QmpCommands::cmd_start_postcopy, none, kEmpty}},
      {"migrate_cancel", {&QmpCommands::cmd_cancel, none, kEmpty}},
      {"query-guest", {&QmpCommands::cmd_query_guest, {{"verify", "bool", true}}, kAny}},
      {"set-vcpu-dirty-limit",
       {&QmpCommands::cmd_set_dirty_limit,
        {{"cpu-index", "int", true}, {"dirty-rate", "int"}},
        kEmpty}},
      {"cancel-vcpu-dirty-limit",
       {&QmpCommands::cmd_cancel_dirty_limit, {{"cpu-index", "int", true}}, kEmpty}},
      {"query-vcpu-dirty-limit", {&QmpCommands::cmd_query_dirty_limit, none, kAny}},
      {"query-transports", {&QmpCommands::cmd_query_transports, none, kAny}},
      {"query-commands", {&QmpCommands::cmd_query_commands, none, kAny}},
      {"query-version", {&QmpCommands::cmd_query_version, none, kAny}},
      {"query-status", {&QmpCommands::cmd_query_status, none, kAny}},
      {"query-qmp-schema", {&QmpCommands::cmd_query_qmp_schema, none, kAny}},
      {"quit", {&QmpCommands::cmd_quit, none, kEmpty}},
  };
}

std::vector<std::string> QmpCommands::command_names() const {
  std::vector<std::string> names = {"qmp_capabilities"};
  for (const auto& [name, handler] : table_) names.push_back(name);
  std::sort(names.begin(), names.end());
  return names;
}

Json QmpCommands::dispatch(const Request& request) {
  auto it = table_.find(request.execute);
  if (it == table_.end()) {
    std::string known;
    for (const auto& n : command_names()) known += (known.empty() ? "" : ", ") + n;
    return make_error("The command " + utf8_truncate(request.execute, 64) +
                          " has not been found; known commands: " + known,
                      request.id, "CommandNotFound");
  }
  const CommandSpec& spec = it->second;
  try {
    Result<Json> r = check_arguments(spec.args, request.arguments);
    if (r) r = (this->*(spec.handler))(ArgReader(request.arguments));
    if (!r) return make_error(request.execute + ": " + r.status().message(), request.id);
    return make_return(*r, request.id);
  } catch (const std::exception& e) {
    return make_error(request.execute + ": internal error: " + utf8_truncate(e.what(), 200),
                      request.id);
  }
}

Result<Json> QmpCommands::check_arguments(const std::vector<ArgSpec>& specs, const Json& args) {
  for (const auto& [key, value] : args.items()) {
    (void)value;
    bool known = false;
    for (const ArgSpec& a : specs) known = known || a.name == key;
    if (!known) {
      std::string list;
      for (const ArgSpec& a : specs) list += (list.empty() ? "" : ", ") + a.name;
      return Status(Code::kInvalidArgument,
                    "unknown argument '" + utf8_truncate(key, 64) + "'" +
                        (list.empty() ? " (this command takes none)" : " (known: " + list + ")"));
    }
  }
  return Json::object();
}

Json QmpCommands::schema() const {
  auto builtin = [](const char* name, const char* json_type) {
    return Json{{"name", name}, {"meta-type", "builtin"}, {"json-type", json_type}};
  };
  auto members = [](const std::vector<ArgSpec>& args) {
    Json list = Json::array();
    for (const ArgSpec& a : args) {
      Json m = {{"name", a.name}, {"type", a.type}};
      if (a.optional) m["default"] = nullptr;  // QEMU's mark of an optional member
      list.push_back(m);
    }
    return list;
  };
  Json out = Json::array();
  auto command = [&](const std::string& name, const std::vector<ArgSpec>& args,
                     const std::string& returns) {
    std::string arg_type = args.empty() ? kEmpty : "q_obj_" + name + "-arg";
    out.push_back({{"name", name}, {"meta-type", "command"}, {"arg-type", arg_type},
                   {"ret-type", returns}});
    if (!args.empty()) {
      out.push_back({{"name", arg_type}, {"meta-type", "object"}, {"members", members(args)}});
    }
  };
  command("qmp_capabilities", {{"enable", "[QMPCapability]", true}}, kEmpty);
  for (const auto& [name, spec] : table_) command(name, spec.args, spec.returns);
  out.push_back({{"name", "MIGRATION"}, {"meta-type", "event"}, {"arg-type", "q_obj_MIGRATION-arg"}});
  out.push_back({{"name", "q_obj_MIGRATION-arg"},
                 {"meta-type", "object"},
                 {"members", members({{"status", "MigrationStatus"}, {"error-desc", "str", true}})}});
  Json statuses = Json::array();
  for (int i = 0; i <= static_cast<int>(kLastStatus); ++i) {
    statuses.push_back(qmp_status_name(static_cast<MigrationStatus>(i)));
  }
  out.push_back({{"name", "MigrationStatus"}, {"meta-type", "enum"}, {"values", statuses}});
  out.push_back({{"name", "MigrationCapability"},
                 {"meta-type", "enum"},
                 {"values", capability_names()}});
  out.push_back({{"name", "MigrationCapabilityStatus"},
                 {"meta-type", "object"},
                 {"members", members({{"capability", "MigrationCapability"}, {"state", "bool"}})}});
  out.push_back({{"name", "[MigrationCapabilityStatus]"},
                 {"meta-type", "array"},
                 {"element-type", "MigrationCapabilityStatus"}});
  out.push_back({{"name", "QMPCapability"}, {"meta-type", "enum"}, {"values", Json::array()}});
  out.push_back({{"name", "[QMPCapability]"}, {"meta-type", "array"}, {"element-type", "QMPCapability"}});
  out.push_back({{"name", kEmpty}, {"meta-type", "object"}, {"members", Json::array()}});
  out.push_back(builtin("str", "string"));
  out.push_back(builtin("int", "int"));
  out.push_back(builtin("bool", "boolean"));
  out.push_back(builtin("any", "value"));
  return out;
}

Result<Json> QmpCommands::cmd_migrate(const ArgReader& args) {
  if (host_.role() != Role::kSource) return wrong_role("migrate", host_.role());
  Result<std::string> uri = args.string("uri");
  if (!uri) return uri.status();
  Result<bool> resume = args.boolean("resume", false);
  if (!resume) return resume.status();
  if (*resume) {
    if (Status s = host_.resume(*uri); !s) return s;
    return Json::object();
  }
  if (Status s = host_.migrate(*uri, caps_, params_); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_migrate_pause(const ArgReader& /*args*/) {
  if (Status s = host_.pause_postcopy(); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_migrate_recover(const ArgReader& args) {
  if (host_.role() != Role::kDestination) return wrong_role("migrate-recover", host_.role());
  Result<std::string> uri = args.string("uri");
  if (!uri) return uri.status();
  Result<std::string> listening = host_.recover(*uri);
  if (!listening) return listening.status();
  return Json::object();
}

Result<Json> QmpCommands::cmd_migrate_incoming(const ArgReader& args) {
  if (host_.role() != Role::kDestination) return wrong_role("migrate-incoming", host_.role());
  Result<std::string> uri = args.string("uri");
  if (!uri) return uri.status();
  Result<std::string> listening = host_.migrate_incoming(*uri, params_);
  if (!listening) return listening.status();
  return Json{{"uri", *listening}};
}

Result<Json> QmpCommands::cmd_query_migrate(const ArgReader& /*args*/) {
  Json j = query_migrate_json(host_.info());
  if (host_.role() == Role::kDestination && !host_.incoming_uri().empty()) {
    j["incoming-uri"] = host_.incoming_uri();
  }
  return j;
}

Result<Json> QmpCommands::cmd_query_incoming(const ArgReader& /*args*/) {
  if (host_.role() != Role::kDestination) return wrong_role("query-incoming", host_.role());
  std::string uri = host_.incoming_uri();
  return Json{
      {"listening", !uri.empty()}, {"uri", uri}, {"status", qmp_status_name(host_.info().status)}};
}

Result<Json> QmpCommands::cmd_set_capabilities(const ArgReader& args) {
  if (!args.has("capabilities")) {
    return Status(Code::kInvalidArgument, "missing argument 'capabilities'");
  }
  if (in_progress(host_.info().status)) {
    return Status(Code::kInvalidArgument,
                  "there's a migration process in progress; capabilities cannot change now");
  }
  bool events = events_.load();
  if (Status s = apply_capabilities(args.raw()["capabilities"], caps_, &events); !s) return s;
  events_.store(events);
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_capabilities(const ArgReader& /*args*/) {
  return capabilities_json(caps_, events_.load());
}

Result<Json> QmpCommands::cmd_set_parameters(const ArgReader& args) {
  if (in_progress(host_.info().status)) {
    return Status(Code::kInvalidArgument,
                  "there's a migration process in progress; parameters cannot change now");
  }
  if (Status s = apply_parameters(args.raw(), params_); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_parameters(const ArgReader& /*args*/) {
  return parameters_json(params_);
}

Result<Json> QmpCommands::cmd_start_postcopy(const ArgReader& /*args*/) {
  if (host_.role() != Role::kSource) return wrong_role("migrate-start-postcopy", host_.role());
  if (!caps_.postcopy_ram) {
    return Status(Code::kInvalidArgument,
                  "postcopy-ram is off; enable it with migrate-set-capabilities before migrate");
  }
  MigrationStatus st = host_.info().status;
  if (st != MigrationStatus::kActive && st != MigrationStatus::kSetup) {
    return Status(Code::kInvalidArgument, std::string("no precopy migration is running (status ") +
                                              qmp_status_name(st) + ")");
  }
  if (Status s = host_.start_postcopy(); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_cancel(const ArgReader& /*args*/) {
  if (Status s = host_.cancel(); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_guest(const ArgReader& args) {
  Result<bool> verify = args.boolean("verify", false);
  if (!verify) return verify.status();
  Result<GuestInfo> g = host_.guest_info(*verify);
  if (!g) return g.status();
  Json j = {{"role", role_name(host_.role())}, {"present", g->present}};
  if (g->present) {
    j["description"] = g->description;
    j["running"] = g->running;
    j["counters"] = verify_json(g->counters);
  }
  if (g->verification) j["verification"] = verify_json(*g->verification);
  return j;
}

Result<Json> QmpCommands::cmd_set_dirty_limit(const ArgReader& args) {
  Result<std::optional<uint64_t>> cpu = args.unsigned_number("cpu-index", UINT32_MAX);
  if (!cpu) return cpu.status();
  Result<std::optional<uint64_t>> rate = args.unsigned_number("dirty-rate", UINT64_MAX);
  if (!rate) return rate.status();
  if (!*rate) return Status(Code::kInvalidArgument, "missing argument 'dirty-rate' (MB/s)");
  std::optional<uint32_t> index;
  if (*cpu) index = static_cast<uint32_t>(**cpu);
  if (Status s = host_.set_vcpu_dirty_limit(index, **rate); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_cancel_dirty_limit(const ArgReader& args) {
  Result<std::optional<uint64_t>> cpu = args.unsigned_number("cpu-index", UINT32_MAX);
  if (!cpu) return cpu.status();
  std::optional<uint32_t> index;
  if (*cpu) index = static_cast<uint32_t>(**cpu);
  if (Status s = host_.cancel_vcpu_dirty_limit(index); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_dirty_limit(const ArgReader& /*args*/) {
  Result<std::vector<VcpuDirtyLimit>> q = host_.query_vcpu_dirty_limit();
  if (!q) return q.status();
  return dirty_limit_json(*q);
}

Result<Json> QmpCommands::cmd_query_transports(const ArgReader& /*args*/) {
  DefaultTransport d = host_.default_transport();
  return Json{{"available", host_.transports()},
              {"default", {{"name", d.name}, {"reason", d.reason}}}};
}

Result<Json> QmpCommands::cmd_query_commands(const ArgReader& /*args*/) {
  Json list = Json::array();
  for (const auto& n : command_names()) list.push_back({{"name", n}});
  return list;
}

Result<Json> QmpCommands::cmd_query_version(const ArgReader&) { return version_json(); }

// QEMU's RunState names for what a tern guest can be doing.
Result<Json> QmpCommands::cmd_query_status(const ArgReader&) {
  Result<GuestInfo> g = host_.guest_info(false);
  if (!g) return g.status();
  MigrationStatus m = host_.info().status;
  bool running = g->present && g->running;
  const char* status = "running";
  if (!running) {
    if (host_.role() == Role::kDestination) {
      status = "inmigrate";
    } else if (m == MigrationStatus::kCompleted) {
      status = "postmigrate";
    } else if (m == MigrationStatus::kDevice) {
      status = "finish-migrate";
    } else {
      status = "paused";
    }
  }
  return Json{{"running", running}, {"status", status}};
}

Result<Json> QmpCommands::cmd_query_qmp_schema(const ArgReader&) { return schema(); }

Result<Json> QmpCommands::cmd_quit(const ArgReader& /*args*/) {
  if (quit_) quit_();
  return Json::object();
}

}  // namespace tern::control
