// tern's QMP names follow QEMU's qmp-spec: every name ternd accepts or sends is either QEMU's own
// (the lists below, from QEMU's QAPI schema for the same concepts) or a downstream extension
// that starts with tern's `__RFQDN_` prefix (control/qmp_names.h).
#include "control/qmp_names.h"

#include <gtest/gtest.h>

#include <regex>
#include <set>

#include "control/qmp_commands.h"
#include "host_double.h"

namespace tern::control {
namespace {

using Names = std::set<std::string>;

// QEMU's names (qapi/migration.json, control.json, misc.json, run-state.json, introspect.json),
// including the postcopy recovery commands other parts of tern add.
const Names kQemuCommands = {"qmp_capabilities",
                             "migrate",
                             "migrate-incoming",
                             "query-migrate",
                             "migrate-set-capabilities",
                             "query-migrate-capabilities",
                             "migrate-set-parameters",
                             "query-migrate-parameters",
                             "migrate-start-postcopy",
                             "migrate_cancel",
                             "migrate-recover",
                             "migrate-pause",
                             "set-vcpu-dirty-limit",
                             "cancel-vcpu-dirty-limit",
                             "query-vcpu-dirty-limit",
                             "query-commands",
                             "query-version",
                             "query-status",
                             "query-qmp-schema",
                             "quit"};
const Names kQemuCapabilities = {"xbzrle",
                                 "rdma-pin-all",
                                 "auto-converge",
                                 "zero-blocks",
                                 "events",
                                 "postcopy-ram",
                                 "x-colo",
                                 "release-ram",
                                 "return-path",
                                 "pause-before-switchover",
                                 "multifd",
                                 "dirty-bitmaps",
                                 "postcopy-blocktime",
                                 "late-block-activate",
                                 "x-ignore-shared",
                                 "validate-uuid",
                                 "background-snapshot",
                                 "zero-copy-send",
                                 "postcopy-preempt",
                                 "switchover-ack",
                                 "dirty-limit",
                                 "mapped-ram"};
const Names kQemuParameters = {"announce-initial",
                               "announce-max",
                               "announce-rounds",
                               "announce-step",
                               "throttle-trigger-threshold",
                               "cpu-throttle-initial",
                               "cpu-throttle-increment",
                               "cpu-throttle-tailslow",
                               "tls-creds",
                               "tls-hostname",
                               "tls-authz",
                               "max-bandwidth",
                               "avail-switchover-bandwidth",
                               "downtime-limit",
                               "x-checkpoint-delay",
                               "multifd-channels",
                               "xbzrle-cache-size",
                               "max-postcopy-bandwidth",
                               "max-cpu-throttle",
                               "multifd-compression",
                               "multifd-zlib-level",
                               "multifd-zstd-level",
                               "block-bitmap-mapping",
                               "x-vcpu-dirty-limit-period",
                               "vcpu-dirty-limit",
                               "mode",
                               "zero-page-detection",
                               "direct-io"};
const Names kQemuMigrationInfo = {"status",
                                  "ram",
                                  "disk",
                                  "vfio",
                                  "xbzrle-cache",
                                  "total-time",
                                  "expected-downtime",
                                  "downtime",
                                  "setup-time",
                                  "cpu-throttle-percentage",
                                  "error-desc",
                                  "blocked-reasons",
                                  "postcopy-blocktime",
                                  "postcopy-vcpu-blocktime",
                                  "socket-address",
                                  "dirty-limit-throttle-time-per-round",
                                  "dirty-limit-ring-full-time"};
const Names kQemuMigrationStats = {"transferred",
                                   "remaining",
                                   "total",
                                   "duplicate",
                                   "normal",
                                   "normal-bytes",
                                   "dirty-pages-rate",
                                   "mbps",
                                   "dirty-sync-count",
                                   "postcopy-requests",
                                   "page-size",
                                   "multifd-bytes",
                                   "pages-per-second",
                                   "precopy-bytes",
                                   "downtime-bytes",
                                   "postcopy-bytes",
                                   "dirty-sync-missed-zero-copy"};
const Names kQemuDirtyLimitInfo = {"cpu-index", "limit-rate", "current-rate"};
const Names kQemuMigrationEvent = {"status"};

bool is_extension(const std::string& name) { return name.rfind(ext::kPrefix, 0) == 0; }

// Fails for each name that is neither in `qemu` nor a tern extension.
void expect_qemu_or_extension(const Names& qemu, const Json& names, const char* where) {
  for (const Json& n : names) {
    const std::string name = n.get<std::string>();
    EXPECT_TRUE(qemu.count(name) || is_extension(name))
        << where << ": '" << name << "' is not QEMU's and lacks the prefix " << ext::kPrefix;
  }
}

Json keys(const Json& object) {
  Json out = Json::array();
  for (const auto& [k, v] : object.items()) out.push_back(k);
  return out;
}

TEST(QmpNames, EveryExtensionIsADownstreamNameWithTernsPrefix) {
  // QEMU's QAPI name rule (scripts/qapi/expr.py) with the downstream prefix required.
  const std::regex downstream(R"(^__[a-zA-Z0-9.-]+_[a-zA-Z][a-zA-Z0-9_-]*$)");
  Names seen;
  for (const char* name : ext::kAll) {
    EXPECT_TRUE(std::regex_match(name, downstream)) << name;
    EXPECT_TRUE(is_extension(name)) << name;
    EXPECT_TRUE(seen.insert(name).second) << "listed twice: " << name;
  }
  EXPECT_EQ(ext::kPrefix, "__io.github.tern_");
}

TEST(QmpNames, FriendlyNamesMapBothWays) {
  EXPECT_EQ(ext::qmp_name("free-page-hint"), ext::kFreePageHint);
  EXPECT_EQ(ext::qmp_name("chunk-size"), ext::kChunkSize);
  EXPECT_EQ(ext::qmp_name("postcopy-ram"), "postcopy-ram") << "QEMU's names pass through";
  EXPECT_EQ(ext::qmp_name(ext::kWorkers), ext::kWorkers) << "a full name passes through";
  EXPECT_EQ(ext::friendly_name(ext::kMaxRounds), "max-rounds");
  EXPECT_EQ(ext::friendly_name("downtime-limit"), "downtime-limit");
  for (const char* name : ext::kAll) EXPECT_EQ(ext::qmp_name(ext::friendly_name(name)), name);
}

TEST(QmpNames, OldNamesPointToTheirExtension) {
  EXPECT_STREQ(ext::renamed_from("query-guest"), ext::kQueryGuest);
  EXPECT_STREQ(ext::renamed_from("x-free-page-hint"), ext::kFreePageHint);
  EXPECT_EQ(ext::renamed_from("query-migrate"), nullptr);
  HostDouble host(Role::kSource);
  QmpCommands commands(host, MigrationParameters{}, nullptr);
  Json r = commands.dispatch(Request{"query-guest", Json::object(), 1});
  EXPECT_EQ(r["error"]["class"], "CommandNotFound") << r;
  EXPECT_NE(r["error"]["desc"].get<std::string>().find(ext::kQueryGuest), std::string::npos) << r;
  r = commands.dispatch(Request{"migrate-set-parameters", {{"x-workers", 1}}, 2});
  EXPECT_NE(r["error"]["desc"].get<std::string>().find(ext::kWorkers), std::string::npos) << r;
}

// Every name a source and a destination ternd accept or send, through the command table.
TEST(QmpNames, TerndUsesOnlyQemuNamesAndExtensions) {
  HostDouble host(Role::kSource);
  QmpCommands src(host, MigrationParameters{}, nullptr);
  auto run = [](QmpCommands& c, const std::string& cmd, const Json& args = Json::object()) {
    Json r = c.dispatch(Request{cmd, args, std::nullopt});
    EXPECT_TRUE(r.contains("return")) << cmd << ": " << r;
    return r["return"];
  };
  Json commands = Json::array();
  for (const Json& c : run(src, "query-commands")) commands.push_back(c["name"]);
  expect_qemu_or_extension(kQemuCommands, commands, "query-commands");

  Json caps = Json::array();
  for (const Json& c : run(src, "query-migrate-capabilities")) caps.push_back(c["capability"]);
  expect_qemu_or_extension(kQemuCapabilities, caps, "query-migrate-capabilities");
  expect_qemu_or_extension(kQemuParameters, keys(run(src, "query-migrate-parameters")),
                           "query-migrate-parameters");

  run(src, "set-vcpu-dirty-limit", {{"dirty-rate", 8}});
  for (const Json& e : run(src, "query-vcpu-dirty-limit"))
    expect_qemu_or_extension(kQemuDirtyLimitInfo, keys(e), "query-vcpu-dirty-limit");
  run(src, "migrate", {{"uri", "tcp:127.0.0.1:4444"}});
  Json q = run(src, "query-migrate");
  expect_qemu_or_extension(kQemuMigrationInfo, keys(q), "query-migrate");
  expect_qemu_or_extension(kQemuMigrationStats, keys(q["ram"]), "query-migrate ram");

  HostDouble dhost(Role::kDestination);
  QmpCommands dst(dhost, MigrationParameters{}, nullptr);
  expect_qemu_or_extension({}, keys(run(dst, "migrate-incoming", {{"uri", "tcp:127.0.0.1:0"}})),
                           "migrate-incoming (QEMU returns {})");
  expect_qemu_or_extension(kQemuMigrationInfo, keys(run(dst, "query-migrate")),
                           "destination query-migrate");

  // The schema's MIGRATION event members.
  for (const Json& e : run(src, "query-qmp-schema")) {
    if (e["name"] != "q_obj_MIGRATION-arg") continue;
    Json members = Json::array();
    for (const Json& m : e["members"]) members.push_back(m["name"]);
    expect_qemu_or_extension(kQemuMigrationEvent, members, "MIGRATION event");
  }
}

}  // namespace
}  // namespace tern::control
