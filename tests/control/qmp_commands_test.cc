#include "control/qmp_commands.h"

#include <gtest/gtest.h>

#include <map>

#include "host_double.h"

namespace tern::control {
namespace {

class CommandsTest : public ::testing::Test {
 protected:
  Json run(const std::string& line) {
    std::optional<Json> id;
    Result<Request> r = parse_request(line, &id);
    if (!r) return make_error(r.status().message(), id);
    return commands.dispatch(*r);
  }
  static std::string desc(const Json& reply) {
    return reply.contains("error") ? reply["error"]["desc"].get<std::string>() : "";
  }

  HostDouble host{Role::kSource};
  bool quit = false;
  QmpCommands commands{host, MigrationParameters{}, [this] { quit = true; }};
};

TEST_F(CommandsTest, UnknownCommandListsTheKnownOnes) {
  Json r = run(R"({"execute": "migrate-teleport", "id": 7})");
  EXPECT_EQ(r["error"]["class"], "CommandNotFound");
  EXPECT_EQ(r["id"], 7);
  std::string d = desc(r);
  for (const char* name : {"migrate", "query-migrate", "migrate-set-capabilities",
                           "migrate-start-postcopy", "migrate_cancel", "query-guest", "quit"}) {
    EXPECT_NE(d.find(name), std::string::npos) << name << " missing from: " << d;
  }
}

TEST_F(CommandsTest, MalformedRequestsAreNamed) {
  EXPECT_NE(desc(run("{not json")).find("JSON parse error"), std::string::npos);
  EXPECT_NE(desc(run("[1,2]")).find("must be a JSON object"), std::string::npos);
  EXPECT_NE(desc(run(R"({"arguments": {}})")).find("lacks member 'execute'"), std::string::npos);
  EXPECT_NE(desc(run(R"({"execute": 3})")).find("'execute' must be a string"), std::string::npos);
  Json r = run(R"({"execute": "migrate", "arguments": [1], "id": "a"})");
  EXPECT_NE(desc(r).find("'arguments' must be an object"), std::string::npos);
  EXPECT_EQ(r["id"], "a") << "the id is echoed even on a malformed request";
  EXPECT_NE(desc(run(R"({"execute": "quit", "extra": 1})")).find("'extra' is unexpected"),
            std::string::npos);
}

TEST_F(CommandsTest, WrongArgumentTypesNameTheArgument) {
  EXPECT_EQ(desc(run(R"({"execute": "migrate", "arguments": {"uri": 5}})")),
            "migrate: argument 'uri' must be a string, got 5");
  EXPECT_EQ(desc(run(R"({"execute": "migrate"})")), "migrate: missing argument 'uri'");
  EXPECT_NE(desc(run(R"({"execute": "migrate", "arguments": {"uri": "tcp:h:1", "bw": 1}})"))
                .find("unknown argument 'bw' (known: uri, detach, resume)"),
            std::string::npos);
  EXPECT_NE(desc(run(R"({"execute": "query-guest", "arguments": {"verify": "yes"}})"))
                .find("argument 'verify' must be a boolean"),
            std::string::npos);
  EXPECT_NE(desc(run(R"({"execute": "query-migrate", "arguments": {"x": 1}})"))
                .find("this command takes none"),
            std::string::npos);
}

TEST_F(CommandsTest, MigrateUsesTheCapabilitiesAndParametersSetBefore) {
  EXPECT_EQ(run(R"({"execute": "migrate-set-capabilities", "arguments": {"capabilities": [
                  {"capability": "postcopy-ram", "state": true}]}})"),
            Json({{"return", Json::object()}}));
  EXPECT_EQ(run(R"({"execute": "migrate-set-parameters",
                    "arguments": {"multifd-channels": 3, "downtime-limit": 20}})"),
            Json({{"return", Json::object()}}));
  Json r = run(R"({"execute": "migrate", "arguments": {"uri": "tcp:127.0.0.1:4444"}, "id": 1})");
  ASSERT_TRUE(r.contains("return")) << r;
  EXPECT_EQ(host.last_uri_, "tcp:127.0.0.1:4444");
  EXPECT_TRUE(host.caps_.postcopy_ram);
  EXPECT_EQ(host.params_.multifd_channels, 3u);
  EXPECT_EQ(host.params_.downtime_limit_ms, 20u);

  Json q = run(R"({"execute": "query-migrate"})")["return"];
  EXPECT_EQ(q["status"], "active");
  EXPECT_EQ(q["transport"], "tcp");
  EXPECT_TRUE(q["ram"].contains("dirty-sync-count"));

  // Changing capabilities or parameters mid-migration is refused, as in QEMU.
  EXPECT_NE(desc(run(R"({"execute": "migrate-set-parameters",
                         "arguments": {"multifd-channels": 4}})"))
                .find("in progress"),
            std::string::npos);
  EXPECT_NE(
      desc(run(R"({"execute": "migrate", "arguments": {"uri": "tcp:h:1"}})")).find("in progress"),
      std::string::npos);

  ASSERT_TRUE(run(R"({"execute": "migrate-start-postcopy"})").contains("return"));
  EXPECT_EQ(run(R"({"execute": "query-migrate"})")["return"]["status"], "postcopy-active");
  ASSERT_TRUE(run(R"({"execute": "migrate_cancel"})").contains("return"));
  EXPECT_EQ(host.info().status, MigrationStatus::kCancelled);
}

TEST_F(CommandsTest, PostcopyNeedsTheCapabilityAndARunningPrecopy) {
  EXPECT_NE(desc(run(R"({"execute": "migrate-start-postcopy"})")).find("postcopy-ram is off"),
            std::string::npos);
  ASSERT_TRUE(run(R"({"execute": "migrate-set-capabilities", "arguments": {"capabilities": [
                    {"capability": "postcopy-ram", "state": true}]}})")
                  .contains("return"));
  EXPECT_NE(desc(run(R"({"execute": "migrate-start-postcopy"})"))
                .find("no precopy migration is running (status none)"),
            std::string::npos);
}

TEST_F(CommandsTest, QueriesReturnQemuShapes) {
  Json caps = run(R"({"execute": "query-migrate-capabilities"})")["return"];
  ASSERT_EQ(caps.size(), 5u);
  EXPECT_EQ(caps[0], Json({{"capability", "events"}, {"state", false}}));
  EXPECT_EQ(caps[1], Json({{"capability", "postcopy-ram"}, {"state", false}}));
  EXPECT_EQ(caps[3], Json({{"capability", "dirty-limit"}, {"state", false}}));
  EXPECT_EQ(caps[4], Json({{"capability", "x-free-page-hint"}, {"state", false}}));
  Json params = run(R"({"execute": "query-migrate-parameters"})")["return"];
  EXPECT_EQ(params["multifd-channels"], 2);
  EXPECT_EQ(params["downtime-limit"], 300);
  EXPECT_EQ(params["vcpu-dirty-limit"], 1);
  EXPECT_EQ(params["x-vcpu-dirty-limit-period"], 1000);
  EXPECT_EQ(run(R"({"execute": "query-migrate"})")["return"], Json::object());  // as QEMU
  Json t = run(R"({"execute": "query-transports"})")["return"];
  EXPECT_EQ(t["default"]["name"], "tcp");
  Json g = run(R"({"execute": "query-guest", "arguments": {"verify": true}})")["return"];
  EXPECT_EQ(g["role"], "source");
  EXPECT_EQ(g["verification"]["pages-checked"], 16384);
  EXPECT_EQ(g["verification"]["mismatches"], 0);
}

TEST_F(CommandsTest, RoleMismatchesAreExplained) {
  EXPECT_NE(desc(run(R"({"execute": "migrate-incoming", "arguments": {"uri": "tcp:h:0"}})"))
                .find("this ternd is a source"),
            std::string::npos);
  HostDouble dst(Role::kDestination);
  QmpCommands dc(dst, MigrationParameters{}, nullptr);
  Json r = dc.dispatch(Request{"migrate", {{"uri", "tcp:h:1"}}, std::nullopt});
  EXPECT_NE(desc(r).find("this ternd is a destination"), std::string::npos);
  r = dc.dispatch(Request{"migrate-incoming", {{"uri", "tcp:127.0.0.1:0"}}, std::nullopt});
  EXPECT_EQ(r["return"]["uri"], "tcp:127.0.0.1:40111");
  r = dc.dispatch(Request{"query-migrate", Json::object(), std::nullopt});
  EXPECT_EQ(r["return"]["incoming-uri"], "tcp:127.0.0.1:40111");
  r = dc.dispatch(Request{"query-incoming", Json::object(), std::nullopt});
  EXPECT_EQ(r["return"]["listening"], true);
}

TEST_F(CommandsTest, DirtyLimitCommands) {
  EXPECT_TRUE(run(R"({"execute": "set-vcpu-dirty-limit", "arguments": {"dirty-rate": 40}})")
                  .contains("return"));
  EXPECT_TRUE(run(R"({"execute": "set-vcpu-dirty-limit",
                      "arguments": {"cpu-index": 1, "dirty-rate": 10}})")
                  .contains("return"));
  Json q = run(R"({"execute": "query-vcpu-dirty-limit"})")["return"];
  ASSERT_EQ(q.size(), 2u);
  EXPECT_EQ(q[0]["cpu-index"], 0);
  EXPECT_EQ(q[0]["limit-rate"], 40);
  EXPECT_EQ(q[1]["limit-rate"], 10);
  EXPECT_TRUE(q[1].contains("current-rate"));
  EXPECT_NE(desc(run(R"({"execute": "set-vcpu-dirty-limit", "arguments": {"cpu-index": 1}})"))
                .find("missing argument 'dirty-rate'"),
            std::string::npos);
  EXPECT_NE(desc(run(R"({"execute": "set-vcpu-dirty-limit", "arguments": {"dirty-rate": -3}})"))
                .find("must be a non-negative integer"),
            std::string::npos);
  EXPECT_TRUE(run(R"({"execute": "cancel-vcpu-dirty-limit", "arguments": {"cpu-index": 0}})")
                  .contains("return"));
  q = run(R"({"execute": "query-vcpu-dirty-limit"})")["return"];
  ASSERT_EQ(q.size(), 1u);
  EXPECT_EQ(q[0]["cpu-index"], 1);
  EXPECT_TRUE(run(R"({"execute": "cancel-vcpu-dirty-limit"})").contains("return"));
  EXPECT_TRUE(run(R"({"execute": "query-vcpu-dirty-limit"})")["return"].empty());
  EXPECT_TRUE(run(R"({"execute": "migrate-set-capabilities", "arguments": {"capabilities": [
                    {"capability": "dirty-limit", "state": true}]}})")
                  .contains("return"));
  EXPECT_TRUE(run(R"({"execute": "migrate-set-parameters",
                      "arguments": {"vcpu-dirty-limit": 8, "x-vcpu-dirty-limit-period": 200}})")
                  .contains("return"));
  EXPECT_NE(desc(run(R"({"execute": "migrate-set-parameters",
                         "arguments": {"x-vcpu-dirty-limit-period": 1}})"))
                .find("must be in [10, 60000]"),
            std::string::npos);
}

TEST_F(CommandsTest, QuitCallsBack) {
  EXPECT_EQ(run(R"({"execute": "quit", "id": 2})"), Json({{"return", Json::object()}, {"id", 2}}));
  EXPECT_TRUE(quit);
}

}  // namespace
}  // namespace tern::control

namespace tern::control {
namespace {

TEST_F(CommandsTest, EventsCapabilityAndQemuQueries) {
  EXPECT_FALSE(commands.events_enabled());
  EXPECT_EQ(run(R"({"execute": "migrate-set-capabilities", "arguments": {"capabilities": [
                  {"capability": "events", "state": true}]}})"),
            Json({{"return", Json::object()}}));
  EXPECT_TRUE(commands.events_enabled());
  EXPECT_EQ(run(R"({"execute": "query-migrate-capabilities"})")["return"][0]["state"], true);
  Json v = run(R"({"execute": "query-version"})")["return"];
  EXPECT_TRUE(v["qemu"].contains("major"));
  EXPECT_EQ(v["package"], "tern");
  Json st = run(R"({"execute": "query-status"})")["return"];
  EXPECT_EQ(st, Json({{"running", true}, {"status", "running"}}));
}

// The schema is generated from the command table: every command query-commands lists is in
// it, with an argument object naming exactly what dispatch() accepts.
TEST_F(CommandsTest, SchemaDescribesTheRealCommands) {
  Json schema = run(R"({"execute": "query-qmp-schema"})")["return"];
  ASSERT_TRUE(schema.is_array());
  std::map<std::string, Json> by_name;
  for (const Json& e : schema) by_name[e["name"]] = e;
  Json commands_reply = run(R"({"execute": "query-commands"})");
  for (const Json& c : commands_reply["return"]) {
    std::string name = c["name"];
    ASSERT_TRUE(by_name.count(name)) << name;
    const Json& cmd = by_name[name];
    EXPECT_EQ(cmd["meta-type"], "command");
    ASSERT_TRUE(by_name.count(cmd["arg-type"])) << name;
    ASSERT_TRUE(by_name.count(cmd["ret-type"])) << name;
  }
  const Json& migrate_args = by_name[by_name["migrate"]["arg-type"]];
  EXPECT_EQ(migrate_args["members"][0], Json({{"name", "uri"}, {"type", "str"}}));
  EXPECT_EQ(by_name["query-version"]["arg-type"], "q_empty");
  EXPECT_EQ(by_name["MIGRATION"]["meta-type"], "event");
  // Every type a member names is defined.
  for (const Json& e : schema) {
    if (e["meta-type"] != "object") continue;
    for (const Json& m : e["members"]) EXPECT_TRUE(by_name.count(m["type"])) << m.dump();
  }
  // An argument the table does not list is refused by name.
  Json r = run(R"({"execute": "query-version", "arguments": {"x": 1}})");
  EXPECT_NE(r["error"]["desc"].get<std::string>().find("unknown argument 'x'"), std::string::npos);
}

}  // namespace
}  // namespace tern::control

namespace tern::control {
namespace {

// Postcopy recovery's commands: refused outside postcopy-paused with the status named, then
// pause -> recover (destination) / resume (source) as QEMU names them.
TEST(RecoveryCommands, PauseRecoverResume) {
  HostDouble src(Role::kSource);
  QmpCommands sc(src, MigrationParameters{}, nullptr);
  auto run = [](QmpCommands& c, const char* json) {
    Json j = Json::parse(json);
    return c.dispatch(Request{j["execute"], j.value("arguments", Json::object()), std::nullopt});
  };
  auto desc = [](const Json& r) { return r.contains("error") ? std::string(r["error"]["desc"]) : ""; };
  EXPECT_NE(desc(run(sc, R"({"execute": "migrate-pause"})")).find("postcopy only"),
            std::string::npos);
  EXPECT_NE(desc(run(sc, R"({"execute": "migrate", "arguments": {"uri": "tcp:h:1", "resume": true}})"))
                .find("postcopy-paused"),
            std::string::npos);
  EXPECT_NE(desc(run(sc, R"({"execute": "migrate-recover", "arguments": {"uri": "tcp:h:1"}})"))
                .find("destination command"),
            std::string::npos);
  ASSERT_TRUE(run(sc, R"({"execute": "migrate-set-capabilities", "arguments": {"capabilities": [
                  {"capability": "postcopy-ram", "state": true}]}})").contains("return"));
  ASSERT_TRUE(run(sc, R"({"execute": "migrate", "arguments": {"uri": "tcp:h:1"}})").contains("return"));
  ASSERT_TRUE(run(sc, R"({"execute": "migrate-start-postcopy"})").contains("return"));
  ASSERT_TRUE(run(sc, R"({"execute": "migrate-pause"})").contains("return"));
  EXPECT_EQ(src.info().status, MigrationStatus::kPostcopyPaused);
  ASSERT_TRUE(run(sc, R"({"execute": "migrate", "arguments": {"uri": "tcp:h:2", "resume": true}})")
                  .contains("return"));
  EXPECT_EQ(src.info().status, MigrationStatus::kPostcopyActive);
  EXPECT_EQ(src.last_uri_, "tcp:h:2");

  HostDouble dst(Role::kDestination);
  QmpCommands dc(dst, MigrationParameters{}, nullptr);
  EXPECT_NE(desc(run(dc, R"({"execute": "migrate-recover", "arguments": {"uri": "tcp:h:1"}})"))
                .find("postcopy-paused"),
            std::string::npos);
  EXPECT_NE(desc(run(dc, R"({"execute": "migrate-recover"})")).find("uri"), std::string::npos);
}

}  // namespace
}  // namespace tern::control
