#include "control/qmp_commands.h"

#include <algorithm>

#include "control/migration_json.h"

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
  table_ = {
      {"migrate", &QmpCommands::cmd_migrate},
      {"migrate-incoming", &QmpCommands::cmd_migrate_incoming},
      {"query-migrate", &QmpCommands::cmd_query_migrate},
      {"query-incoming", &QmpCommands::cmd_query_incoming},
      {"migrate-set-capabilities", &QmpCommands::cmd_set_capabilities},
      {"query-migrate-capabilities", &QmpCommands::cmd_query_capabilities},
      {"migrate-set-parameters", &QmpCommands::cmd_set_parameters},
      {"query-migrate-parameters", &QmpCommands::cmd_query_parameters},
      {"migrate-start-postcopy", &QmpCommands::cmd_start_postcopy},
      {"migrate_cancel", &QmpCommands::cmd_cancel},
      {"query-guest", &QmpCommands::cmd_query_guest},
      {"set-vcpu-dirty-limit", &QmpCommands::cmd_set_dirty_limit},
      {"cancel-vcpu-dirty-limit", &QmpCommands::cmd_cancel_dirty_limit},
      {"query-vcpu-dirty-limit", &QmpCommands::cmd_query_dirty_limit},
      {"query-transports", &QmpCommands::cmd_query_transports},
      {"query-commands", &QmpCommands::cmd_query_commands},
      {"quit", &QmpCommands::cmd_quit},
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
    return make_error(
        "The command " + request.execute + " has not been found; known commands: " + known,
        request.id, "CommandNotFound");
  }
  ArgReader args(request.arguments);
  Result<Json> r = (this->*(it->second))(args);
  if (!r) return make_error(request.execute + ": " + r.status().message(), request.id);
  return make_return(*r, request.id);
}

Result<Json> QmpCommands::cmd_migrate(const ArgReader& args) {
  if (Status s = args.only({"uri", "detach"}); !s) return s;
  if (host_.role() != Role::kSource) return wrong_role("migrate", host_.role());
  Result<std::string> uri = args.string("uri");
  if (!uri) return uri.status();
  if (Status s = host_.migrate(*uri, caps_, params_); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_migrate_incoming(const ArgReader& args) {
  if (Status s = args.only({"uri"}); !s) return s;
  if (host_.role() != Role::kDestination) return wrong_role("migrate-incoming", host_.role());
  Result<std::string> uri = args.string("uri");
  if (!uri) return uri.status();
  Result<std::string> listening = host_.migrate_incoming(*uri, params_);
  if (!listening) return listening.status();
  return Json{{"uri", *listening}};
}

Result<Json> QmpCommands::cmd_query_migrate(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  Json j = query_migrate_json(host_.info());
  if (host_.role() == Role::kDestination && !host_.incoming_uri().empty()) {
    j["incoming-uri"] = host_.incoming_uri();
  }
  return j;
}

Result<Json> QmpCommands::cmd_query_incoming(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  if (host_.role() != Role::kDestination) return wrong_role("query-incoming", host_.role());
  std::string uri = host_.incoming_uri();
  return Json{
      {"listening", !uri.empty()}, {"uri", uri}, {"status", qmp_status_name(host_.info().status)}};
}

Result<Json> QmpCommands::cmd_set_capabilities(const ArgReader& args) {
  if (Status s = args.only({"capabilities"}); !s) return s;
  if (!args.has("capabilities")) {
    return Status(Code::kInvalidArgument, "missing argument 'capabilities'");
  }
  if (in_progress(host_.info().status)) {
    return Status(Code::kInvalidArgument,
                  "there's a migration process in progress; capabilities cannot change now");
  }
  if (Status s = apply_capabilities(args.raw()["capabilities"], caps_); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_capabilities(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  return capabilities_json(caps_);
}

Result<Json> QmpCommands::cmd_set_parameters(const ArgReader& args) {
  if (in_progress(host_.info().status)) {
    return Status(Code::kInvalidArgument,
                  "there's a migration process in progress; parameters cannot change now");
  }
  if (Status s = apply_parameters(args.raw(), params_); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_parameters(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  return parameters_json(params_);
}

Result<Json> QmpCommands::cmd_start_postcopy(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
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

Result<Json> QmpCommands::cmd_cancel(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  if (Status s = host_.cancel(); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_guest(const ArgReader& args) {
  if (Status s = args.only({"verify"}); !s) return s;
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
  if (Status s = args.only({"cpu-index", "dirty-rate"}); !s) return s;
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
  if (Status s = args.only({"cpu-index"}); !s) return s;
  Result<std::optional<uint64_t>> cpu = args.unsigned_number("cpu-index", UINT32_MAX);
  if (!cpu) return cpu.status();
  std::optional<uint32_t> index;
  if (*cpu) index = static_cast<uint32_t>(**cpu);
  if (Status s = host_.cancel_vcpu_dirty_limit(index); !s) return s;
  return Json::object();
}

Result<Json> QmpCommands::cmd_query_dirty_limit(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  Result<std::vector<VcpuDirtyLimit>> q = host_.query_vcpu_dirty_limit();
  if (!q) return q.status();
  return dirty_limit_json(*q);
}

Result<Json> QmpCommands::cmd_query_transports(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  DefaultTransport d = host_.default_transport();
  return Json{{"available", host_.transports()},
              {"default", {{"name", d.name}, {"reason", d.reason}}}};
}

Result<Json> QmpCommands::cmd_query_commands(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  Json list = Json::array();
  for (const auto& n : command_names()) list.push_back({{"name", n}});
  return list;
}

Result<Json> QmpCommands::cmd_quit(const ArgReader& args) {
  if (Status s = args.only({}); !s) return s;
  if (quit_) quit_();
  return Json::object();
}

}  // namespace tern::control
