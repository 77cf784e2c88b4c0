#include "tests/fault/fault_qmp.h"

#include <gtest/gtest.h>

#include <thread>

#include "control/qmp_names.h"

namespace tern::fault {

using namespace std::chrono_literals;

Json query_migrate(QmpClient& c) {
  auto q = c.execute("query-migrate", Json::object(), 5s);
  if (!q) return {{"status", "no answer: " + q.status().to_string()}};
  return *q;
}

std::string status_of(const Json& q) {
  return q.contains("status") ? q["status"].get<std::string>() : "none";
}

bool in_progress(const std::string& status) {
  return status != "none" && status != "completed" && status != "failed" &&
         status != "cancelled" && status.rfind("no answer", 0) != 0;
}

Json poll_until(QmpClient& c, const std::function<bool(const Json&)>& done,
                std::chrono::milliseconds bound, bool* met) {
  const auto deadline = std::chrono::steady_clock::now() + bound;
  Json q;
  for (;;) {
    q = query_migrate(c);
    if (done(q)) {
      *met = true;
      return q;
    }
    if (std::chrono::steady_clock::now() >= deadline) break;
    std::this_thread::sleep_for(10ms);
  }
  *met = false;
  return q;
}

PageCheck verify_destination(QmpClient& d, const std::string& what) {
  PageCheck pc;
  auto g = d.execute(control::ext::kQueryGuest, Json::object(), 60s);
  if (!g) {
    ADD_FAILURE() << what << ": the destination's query-guest: " << g.status().to_string();
    return pc;
  }
  const Json& v = (*g)["verification"];
  if (!v.is_object() || !v.contains("pages-checked")) {
    ADD_FAILURE() << what << ": the destination reported no page check: " << g->dump();
    return pc;
  }
  pc.checked = v["pages-checked"].get<uint64_t>();
  pc.bad = v["mismatches"].get<uint64_t>() + v.value("touched-mismatches", uint64_t{0});
  EXPECT_GT(pc.checked, 0u) << what << ": " << g->dump();
  EXPECT_EQ(pc.bad, 0u) << what << ": the migrated guest has bad pages: " << v.dump();
  return pc;
}

PageCheck verify_source_intact(QmpClient& s, const std::string& what) {
  PageCheck pc;
  auto g = s.execute(control::ext::kQueryGuest, {{"verify", true}}, 60s);
  if (!g) {
    ADD_FAILURE() << what << ": the source's guest check: " << g.status().to_string();
    return pc;
  }
  EXPECT_TRUE((*g)["running"].get<bool>()) << what << ": the source guest is not running "
                                            << g->dump();
  const Json& v = (*g)["verification"];
  if (!v.is_object() || !v.contains("pages-checked")) {
    ADD_FAILURE() << what << ": the source reported no page check: " << g->dump();
    return pc;
  }
  pc.checked = v["pages-checked"].get<uint64_t>();
  pc.bad = v["mismatches"].get<uint64_t>();
  EXPECT_GT(pc.checked, 0u) << what << ": " << g->dump();
  EXPECT_EQ(pc.bad, 0u) << what << ": the source guest lost pages: " << v.dump();
  return pc;
}

PageCheck retry_migration(QmpClient& s, QmpClient& d,
                          const std::function<std::string(const std::string&)>& to_source_uri,
                          const std::string& what) {
  const std::string step = what + ", retry";
  Json off = Json::array({{{"capability", "postcopy-ram"}, {"state", false}}});
  auto c = s.execute("migrate-set-capabilities", {{"capabilities", off}});
  EXPECT_TRUE(c.is_ok()) << step << ": " << c.status().to_string();
  auto p = s.execute("migrate-set-parameters", {{"max-bandwidth", 0},
                                                 {"downtime-limit", 300},
                                                 {control::ext::kMaxRounds, 30},
                                                 {control::ext::kHandshakeTimeout, 10000}});
  EXPECT_TRUE(p.is_ok()) << step << ": " << p.status().to_string();
  auto inc = d.execute(control::ext::kQueryIncoming, Json::object(), 10s);
  if (!inc) {
    ADD_FAILURE() << step << ": query-incoming: " << inc.status().to_string();
    return {};
  }
  auto m = s.execute("migrate", {{"uri", to_source_uri((*inc)["uri"])}});
  if (!m) {
    ADD_FAILURE() << step << ": migrate: " << m.status().to_string();
    return {};
  }
  bool met = false;
  Json sq = poll_until(s, [](const Json& q) { return !in_progress(status_of(q)); }, 120s, &met);
  EXPECT_TRUE(met) << step << ": the source did not finish within 120 s: " << sq.dump();
  EXPECT_EQ(status_of(sq), "completed") << step << ": " << sq.dump();
  Json dq = poll_until(d, [](const Json& q) { return status_of(q) == "completed"; }, 30s, &met);
  EXPECT_TRUE(met) << step << ": the destination did not complete within 30 s: " << dq.dump();
  if (!met) return {};
  return verify_destination(d, step);
}

}  // namespace tern::fault
