// ternctl: the command line over ternd's QMP socket. Human tables and a progress bar by default,
// --json for scripts. Exit codes in control/ternctl.h.
#include <CLI/CLI.hpp>
#include <algorithm>
#include <iostream>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "control/format.h"
#include "control/migration_json.h"
#include "control/qmp_client.h"
#include "control/qmp_names.h"
#include "control/report.h"
#include "control/ternctl.h"

namespace tern::control {
namespace {

struct Options {
  std::string socket;
  bool json = false;
  double timeout_s = 30;
  // migrate
  std::string uri;
  bool postcopy = false;
  bool preempt = false;
  std::optional<uint32_t> channels;
  std::string max_bandwidth;
  std::optional<uint64_t> downtime_limit;
  std::string chunk_size;
  bool wait = false;
  bool resume = false;
  std::optional<double> postcopy_after;
  // set-capability / set-parameter / raw
  std::string name;
  std::string value;
  std::string raw_args;
  // guest
  bool verify = false;
  // dirty limit
  std::optional<uint32_t> cpu_index;
  uint64_t dirty_rate = 0;
  bool dirty_limit = false;
  bool free_page_hint = false;
  // summary
  std::string destination;
  std::string transport_reason;
  double interval = 0;
  double settle_s = 120;
};

std::chrono::milliseconds timeout(const Options& o) {
  return std::chrono::milliseconds(static_cast<int64_t>(o.timeout_s * 1000));
}

void print_json(const Json& j) { std::cout << j.dump(2) << "\n"; }

int fail(const std::string& what, const Status& s) {
  std::cerr << "ternctl: " << what << ": " << s.message() << "\n";
  return kExitCommand;
}

// Runs one command; prints `human` (or the JSON return) on success.
int run_simple(QmpClient& c, const Options& o, const std::string& cmd, const Json& args,
               const std::string& human) {
  Result<Json> r = c.execute(cmd, args, timeout(o));
  if (!r) return fail(cmd, r.status());
  if (o.json) {
    print_json(*r);
  } else if (!human.empty()) {
    std::cout << human << "\n";
  }
  return kExitOk;
}

// Parses a parameter value (`name` as sent on QMP): sizes for byte parameters ("1G"), plain
// integers otherwise.
std::optional<uint64_t> parameter_value(const std::string& name, const std::string& text) {
  if (name == "max-bandwidth" || name == ext::kChunkSize) return parse_size(text);
  if (name == ext::kPageIntegrity) {  // a switch: on / off as well as 1 / 0
    if (text == "on" || text == "true") return 1;
    if (text == "off" || text == "false") return 0;
  }
  if (text.empty() || text.find_first_not_of("0123456789") != std::string::npos) {
    return std::nullopt;
  }
  return std::stoull(text);
}

// migrate --resume: the paused postcopy migration reconnects to URI (migrate resume=true).
int cmd_resume(QmpClient& c, const Options& o) {
  Result<Json> r = c.execute("migrate", {{"uri", o.uri}, {"resume", true}}, timeout(o));
  if (!r) return fail("migrate --resume", r.status());
  if (!o.wait) {
    if (o.json)
      print_json(*r);
    else
      std::cout << "resuming the postcopy migration on " << o.uri << "\n";
    return kExitOk;
  }
  // The resume is taken asynchronously: watch once the migration has left postcopy-paused
  // (the watch stops at postcopy-paused), or shows why it is paused again after 10 s.
  for (int i = 0; i < 1000; ++i) {
    Result<Json> q = c.execute("query-migrate", Json::object(), timeout(o));
    if (!q) return fail("query-migrate", q.status());
    if (q->value("status", "") != "postcopy-paused") break;
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  WatchOptions w;
  w.json = o.json;
  w.interval_s = o.interval;
  return watch_migration(c, w);
}

// migrate-recover URI: the paused destination listens for the source's resume; prints where.
int cmd_recover(QmpClient& c, const Options& o) {
  Result<Json> r = c.execute("migrate-recover", {{"uri", o.uri}}, timeout(o));
  if (!r) return fail("migrate-recover", r.status());
  Result<Json> q = c.execute(ext::kQueryIncoming, Json::object(), timeout(o));
  if (!q) return fail(ext::kQueryIncoming, q.status());
  if (o.json)
    print_json(*q);
  else
    std::cout << "waiting for the source to resume on " << q->value("uri", o.uri) << "\n";
  return kExitOk;
}

int cmd_migrate(QmpClient& c, const Options& o) {
  if (o.resume) return cmd_resume(c, o);
  if (o.postcopy || o.preempt || o.dirty_limit || o.free_page_hint) {
    Json caps = Json::array();
    if (o.postcopy || o.preempt) caps.push_back({{"capability", "postcopy-ram"}, {"state", true}});
    if (o.preempt) caps.push_back({{"capability", "postcopy-preempt"}, {"state", true}});
    if (o.dirty_limit) caps.push_back({{"capability", "dirty-limit"}, {"state", true}});
    if (o.free_page_hint)
      caps.push_back({{"capability", ext::kFreePageHint}, {"state", true}});
    Result<Json> r = c.execute("migrate-set-capabilities", {{"capabilities", caps}}, timeout(o));
    if (!r) return fail("migrate-set-capabilities", r.status());
  }
  Json params = Json::object();
  if (o.channels) params["multifd-channels"] = *o.channels;
  if (o.downtime_limit) params["downtime-limit"] = *o.downtime_limit;
  for (auto [key, text] :
       {std::pair{"max-bandwidth", o.max_bandwidth}, std::pair{ext::kChunkSize, o.chunk_size}}) {
    if (text.empty()) continue;
    std::optional<uint64_t> v = parse_size(text);
    if (!v) {
      std::cerr << "ternctl: bad size '" << text << "' for --" << ext::friendly_name(key) << "\n";
      return kExitUsage;
    }
    params[key] = *v;
  }
  if (!params.empty()) {
    Result<Json> r = c.execute("migrate-set-parameters", params, timeout(o));
    if (!r) return fail("migrate-set-parameters", r.status());
  }
  Result<Json> r = c.execute("migrate", {{"uri", o.uri}}, timeout(o));
  if (!r) return fail("migrate", r.status());
  if (!o.wait) {
    if (o.json) {
      print_json(*r);
    } else {
      std::cout << "migration to " << o.uri << " started\n";
    }
    return kExitOk;
  }
  WatchOptions w;
  w.json = o.json;
  w.interval_s = o.interval;
  w.postcopy_after_s = o.postcopy_after;
  return watch_migration(c, w);
}

int cmd_status(QmpClient& c, const Options& o) {
  Result<Json> r = c.execute("query-migrate", Json::object(), timeout(o));
  if (!r) return fail("query-migrate", r.status());
  if (o.json) {
    print_json(*r);
  } else {
    std::cout << render_query_migrate(*r);
  }
  return kExitOk;
}

int cmd_guest(QmpClient& c, const Options& o) {
  Json args = Json::object();
  if (o.verify) args["verify"] = true;
  Result<Json> r = c.execute(ext::kQueryGuest, args, std::chrono::minutes(10));
  if (!r) return fail(ext::kQueryGuest, r.status());
  if (o.json) {
    print_json(*r);
    return kExitOk;
  }
  const Json& g = *r;
  Rows rows = {{"role", g.value("role", "")}};
  if (!g.value("present", false)) {
    rows.push_back({"guest", "none yet (waiting for a migration)"});
  } else {
    rows.push_back({"guest", g.value("description", "")});
    rows.push_back({"running", g.value("running", false) ? "yes" : "no"});
    const Json& k = g["counters"];
    rows.push_back({"first-touch checks",
                    std::to_string(k.value("touched-checked", 0ull)) + " checked, " +
                        std::to_string(k.value("touched-mismatches", 0ull)) + " mismatches"});
  }
  if (g.contains("verification")) {
    const Json& v = g["verification"];
    rows.push_back(
        {"verification", std::to_string(v.value("pages-checked", 0ull)) + " pages checked, " +
                             std::to_string(v.value("mismatches", 0ull)) + " mismatches"});
    if (v.contains("first-mismatch")) rows.push_back({"first mismatch", v["first-mismatch"]});
  }
  std::cout << format_table(rows);
  return kExitOk;
}

// query-migrate, polled until a terminal status (the destination finishes a little after the
// source; its query-guest then waits for ternd's check of every page) or `limit` passes; the
// last reply either way.
Result<Json> settled_query(QmpClient& c, const Options& o, std::chrono::seconds limit) {
  auto deadline = std::chrono::steady_clock::now() + limit;
  for (;;) {
    Result<Json> q = c.execute("query-migrate", Json::object(), timeout(o));
    if (!q) return q;
    if (is_terminal_status(q->value("status", "")) || q->value("status", "none") == "none" ||
        std::chrono::steady_clock::now() >= deadline) {
      return q;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

int cmd_summary(QmpClient& src, const Options& o) {
  Result<std::unique_ptr<QmpClient>> dst = QmpClient::connect(o.destination, timeout(o));
  if (!dst) return fail("connect to destination", dst.status());
  auto limit = std::chrono::seconds(static_cast<int64_t>(o.settle_s));
  Result<Json> sq = settled_query(src, o, limit);
  if (!sq) return fail("source query-migrate", sq.status());
  Result<Json> dq = settled_query(**dst, o, limit);
  if (!dq) return fail("destination query-migrate", dq.status());
  // The engine verified every page at completion; query-guest reports that check.
  Result<Json> g = (*dst)->execute(ext::kQueryGuest, Json::object(), timeout(o));
  if (!g) return fail(std::string("destination ") + ext::kQueryGuest, g.status());
  Json s = make_summary(*sq, *dq, *g, o.uri, o.transport_reason);
  if (o.json) {
    print_json(s);
  } else {
    std::cout << render_summary(s);
  }
  return summary_ok(s, nullptr) ? kExitOk : kExitFailed;
}

int run(CLI::App& app, Options& o) {
  // A socket that does not exist yet is waited for briefly (a daemon still starting).
  Result<std::unique_ptr<QmpClient>> conn =
      QmpClient::connect(o.socket, std::min(timeout(o), std::chrono::milliseconds(5000)));
  if (!conn) return fail("connect", conn.status());
  QmpClient& c = **conn;
  auto sub = [&](const char* n) { return app.got_subcommand(n); };
  if (sub("migrate")) return cmd_migrate(c, o);
  if (sub("migrate-start-postcopy")) {
    return run_simple(c, o, "migrate-start-postcopy", Json::object(), "switching to postcopy");
  }
  if (sub("cancel")) return run_simple(c, o, "migrate_cancel", Json::object(), "cancelling");
  if (sub("migrate-pause")) {
    return run_simple(c, o, "migrate-pause", Json::object(),
                      "breaking the postcopy link: both sides go to postcopy-paused");
  }
  if (sub("migrate-recover")) return cmd_recover(c, o);
  if (sub("status")) return cmd_status(c, o);
  if (sub("watch")) {
    WatchOptions w;
    w.json = o.json;
    w.interval_s = o.interval;
    return watch_migration(c, w);
  }
  if (sub("set-capability")) {
    if (o.value != "on" && o.value != "off") {
      std::cerr << "ternctl: set-capability: state must be 'on' or 'off', got '" << o.value
                << "'\n";
      return kExitUsage;
    }
    Json caps =
        Json::array({{{"capability", ext::qmp_name(o.name)}, {"state", o.value == "on"}}});
    return run_simple(c, o, "migrate-set-capabilities", {{"capabilities", caps}},
                      o.name + " " + o.value);
  }
  if (sub("set-parameter")) {
    std::optional<uint64_t> v = parameter_value(ext::qmp_name(o.name), o.value);
    if (!v) {
      std::cerr << "ternctl: set-parameter: '" << o.value << "' is not a valid value for " << o.name
                << "\n";
      return kExitUsage;
    }
    return run_simple(c, o, "migrate-set-parameters", {{ext::qmp_name(o.name), *v}},
                      o.name + " = " + std::to_string(*v));
  }
  if (sub("capabilities")) {
    Result<Json> r = c.execute("query-migrate-capabilities", Json::object(), timeout(o));
    if (!r) return fail("query-migrate-capabilities", r.status());
    if (o.json) {
      print_json(*r);
      return kExitOk;
    }
    Rows rows;
    for (const Json& e : *r)
      rows.push_back({std::string(ext::friendly_name(e["capability"].get<std::string>())),
                      e["state"].get<bool>() ? "on" : "off"});
    std::cout << format_table(rows);
    return kExitOk;
  }
  if (sub("parameters")) {
    Result<Json> r = c.execute("query-migrate-parameters", Json::object(), timeout(o));
    if (!r) return fail("query-migrate-parameters", r.status());
    if (o.json) {
      print_json(*r);
      return kExitOk;
    }
    Rows rows;
    for (const auto& [k, v] : r->items())
      rows.push_back({std::string(ext::friendly_name(k)), v.dump()});
    std::cout << format_table(rows);
    return kExitOk;
  }
  if (sub("guest")) return cmd_guest(c, o);
  if (sub("set-dirty-limit")) {
    Json args = {{"dirty-rate", o.dirty_rate}};
    if (o.cpu_index) args["cpu-index"] = *o.cpu_index;
    return run_simple(c, o, "set-vcpu-dirty-limit", args,
                      (o.cpu_index ? "vCPU " + std::to_string(*o.cpu_index) : "every vCPU") +
                          " limited to " + std::to_string(o.dirty_rate) + " MB/s");
  }
  if (sub("cancel-dirty-limit")) {
    Json args = Json::object();
    if (o.cpu_index) args["cpu-index"] = *o.cpu_index;
    return run_simple(c, o, "cancel-vcpu-dirty-limit", args,
                      std::string("dirty limit lifted from ") +
                          (o.cpu_index ? "vCPU " + std::to_string(*o.cpu_index) : "every vCPU"));
  }
  if (sub("dirty-limit")) {
    Result<Json> r = c.execute("query-vcpu-dirty-limit", Json::object(), timeout(o));
    if (!r) return fail("query-vcpu-dirty-limit", r.status());
    if (o.json) {
      print_json(*r);
      return kExitOk;
    }
    if (r->empty()) {
      std::cout << "no vCPU is dirty-limited\n";
      return kExitOk;
    }
    Rows rows;
    for (const Json& e : *r)
      rows.push_back({"vCPU " + e["cpu-index"].dump(),
                      "limit " + e["limit-rate"].dump() + " MB/s, now " +
                          e["current-rate"].dump() + " MB/s, penalty " +
                          e[ext::kPenaltyUs].dump() + " us per ring-full exit"});
    std::cout << format_table(rows);
    return kExitOk;
  }
  if (sub("incoming")) {
    bool start = !o.uri.empty();
    Result<Json> r = start ? c.execute("migrate-incoming", {{"uri", o.uri}}, timeout(o))
                           : c.execute(ext::kQueryIncoming, Json::object(), timeout(o));
    if (!r) return fail(start ? "migrate-incoming" : ext::kQueryIncoming, r.status());
    if (o.json) {
      print_json(*r);
    } else {
      std::cout << r->value(start ? ext::kListeningUri : "uri", "") << "\n";
    }
    return kExitOk;
  }
  if (sub("transports")) {
    Result<Json> r = c.execute(ext::kQueryTransports, Json::object(), timeout(o));
    if (!r) return fail(ext::kQueryTransports, r.status());
    if (o.json) {
      print_json(*r);
    } else {
      std::string avail;
      for (const auto& t : (*r)["available"])
        avail += (avail.empty() ? "" : ", ") + t.get<std::string>();
      std::cout << format_table({{"available", avail},
                                 {"default", (*r)["default"]["name"].get<std::string>()},
                                 {"reason", (*r)["default"]["reason"].get<std::string>()}});
    }
    return kExitOk;
  }
  if (sub("summary")) return cmd_summary(c, o);
  if (sub("quit")) return run_simple(c, o, "quit", Json::object(), "");
  if (sub("raw")) {
    Json args = Json::object();
    if (!o.raw_args.empty()) {
      args = Json::parse(o.raw_args, nullptr, false);
      if (args.is_discarded() || !args.is_object()) {
        std::cerr << "ternctl: raw: JSON-ARGS must be a JSON object, got: " << o.raw_args << "\n";
        return kExitUsage;
      }
    }
    Result<Json> r = c.execute_raw(o.name, args, timeout(o));
    if (!r) return fail(o.name, r.status());
    print_json(*r);
    return r->contains("error") ? kExitCommand : kExitOk;
  }
  return kExitUsage;
}

}  // namespace
}  // namespace tern::control

int main(int argc, char** argv) {
  using tern::control::Options;
  Options o;
  CLI::App app{"ternctl: drive live migrations through a ternd QMP socket"};
  app.require_subcommand(1);
  app.add_option("-s,--socket", o.socket, "ternd's QMP socket")->required()->envname("TERN_SOCKET");
  app.add_flag("--json", o.json, "machine-readable JSON output");
  app.add_option("--timeout", o.timeout_s, "seconds to wait for ternd (default 30)");

  auto* migrate = app.add_subcommand("migrate", "start migrating the source guest to URI");
  migrate->add_option("uri", o.uri, "destination, e.g. tcp:127.0.0.1:4444")->required();
  migrate->add_flag("--postcopy", o.postcopy, "enable postcopy-ram");
  migrate->add_flag("--preempt", o.preempt, "enable postcopy-preempt (implies --postcopy)");
  migrate->add_flag("--dirty-limit", o.dirty_limit,
                    "enable the dirty-limit capability (vCPUs throttled if precopy lags)");
  migrate->add_flag("--free-page-hint", o.free_page_hint,
                    "enable the free-page-hint capability: pages the guest reports free are not sent (S5)");
  migrate->add_option("--channels", o.channels, "multifd-channels (bulk channels)");
  migrate->add_option("--max-bandwidth", o.max_bandwidth, "bytes/s, e.g. 500M; 0 = unlimited");
  migrate->add_option("--downtime-limit", o.downtime_limit, "milliseconds");
  migrate->add_option("--chunk-size", o.chunk_size, "the chunk-size parameter, e.g. 64K");
  migrate->add_flag("--wait", o.wait, "show progress until the migration ends");
  migrate->add_option("--postcopy-after", o.postcopy_after,
                      "with --wait: switch to postcopy after the first round or SECONDS");
  migrate->add_option("--interval", o.interval, "with --wait: seconds between samples");
  migrate->add_flag("--resume", o.resume,
                    "resume a postcopy-paused migration on URI (where migrate-recover listens)");
  app.add_subcommand("migrate-pause", "break the postcopy link on purpose (postcopy-paused)");
  auto* recover = app.add_subcommand(
      "migrate-recover", "destination, postcopy-paused: listen on URI for the source's resume");
  recover->add_option("uri", o.uri, "URI to listen on, e.g. tcp:0.0.0.0:4445")->required();

  app.add_subcommand("migrate-start-postcopy", "switch the running migration to postcopy");
  app.add_subcommand("cancel", "cancel the migration (migrate_cancel)");
  app.add_subcommand("status", "query-migrate as a table");
  auto* watch = app.add_subcommand("watch", "progress bar until the migration ends");
  watch->add_option("--interval", o.interval, "seconds between samples");
  auto* setcap = app.add_subcommand("set-capability", "migrate-set-capabilities NAME on|off");
  setcap->add_option("name", o.name,
                    "postcopy-ram | postcopy-preempt | dirty-limit | free-page-hint | events")
      ->required();
  setcap->add_option("state", o.value, "on | off")->required();
  auto* setpar = app.add_subcommand("set-parameter", "migrate-set-parameters NAME VALUE");
  setpar->add_option("name", o.name,
                    "multifd-channels | max-bandwidth | downtime-limit | chunk-size | ...")
      ->required();
  setpar->add_option("value", o.value, "integer (sizes like 1G for byte parameters)")->required();
  app.add_subcommand("capabilities", "query-migrate-capabilities");
  app.add_subcommand("parameters", "query-migrate-parameters");
  auto* guest = app.add_subcommand("guest", "the guest and its page checks (query-guest)");
  guest->add_flag("--verify", o.verify, "destination: verify every page now");
  auto* incoming = app.add_subcommand("incoming", "print the destination URI, or listen on URI");
  incoming->add_option("uri", o.uri, "URI to listen on (migrate-incoming)");
  auto* setlimit = app.add_subcommand("set-dirty-limit", "set-vcpu-dirty-limit RATE (MB/s)");
  setlimit->add_option("rate", o.dirty_rate, "dirty-rate in MB/s (>= 1)")->required();
  setlimit->add_option("--cpu-index", o.cpu_index, "one vCPU (default: every vCPU)");
  auto* cancellimit = app.add_subcommand("cancel-dirty-limit", "cancel-vcpu-dirty-limit");
  cancellimit->add_option("--cpu-index", o.cpu_index, "one vCPU (default: every vCPU)");
  app.add_subcommand("dirty-limit", "query-vcpu-dirty-limit: limits and current rates");
  app.add_subcommand("transports", "transports compiled in and the default choice");
  auto* summary = app.add_subcommand("summary", "source + destination report after migrating");
  summary->add_option("--destination", o.destination, "destination ternd socket")->required();
  summary->add_option("--uri", o.uri, "URI used (reported as is)");
  summary->add_option("--transport-reason", o.transport_reason, "why this transport (reported)");
  summary->add_option("--settle", o.settle_s,
                      "seconds to wait for both sides to reach a final status (default 120)");
  app.add_subcommand("quit", "stop ternd");
  auto* raw = app.add_subcommand("raw", "send any QMP command and print the reply");
  raw->add_option("execute", o.name, "command name")->required();
  raw->add_option("arguments", o.raw_args, "JSON object of arguments");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    int rc = app.exit(e);
    return rc == 0 ? 0 : tern::control::kExitUsage;
  }
  if (o.preempt) o.postcopy = true;
  return tern::control::run(app, o);
}
