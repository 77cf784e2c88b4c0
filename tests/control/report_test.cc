#include "control/report.h"

#include <gtest/gtest.h>

#include "dataplane/toolkit/channel_tls.h"

#include "control/migration_json.h"

namespace tern::control {
namespace {

Json completed_qm(uint64_t total) {
  MigrationInfo i;
  i.status = MigrationStatus::kCompleted;
  i.transport = "tcp";
  i.stats.total = total;
  i.stats.transferred = total / 2;
  i.stats.total_time = 1500;
  i.stats.downtime = 40;
  i.stats.mbps = 8000;  // 1000 MB/s
  return query_migrate_json(i);
}

Json guest_with(uint64_t checked, uint64_t mismatches) {
  return {{"role", "destination"},
          {"present", true},
          {"verification",
           {{"pages-checked", checked},
            {"mismatches", mismatches},
            {"touched-checked", 5},
            {"touched-mismatches", 0}}}};
}

// The value of the row whose key (trimmed) is `key`, or "" when absent; checks alignment too.
std::string row(const std::string& table, const std::string& key) {
  size_t value_col = std::string::npos;
  std::string found;
  size_t pos = 0;
  while (pos < table.size()) {
    size_t nl = table.find('\n', pos);
    std::string line = table.substr(pos, nl - pos);
    pos = nl + 1;
    size_t gap = line.find("  ", line.find_first_not_of(' '));
    if (gap == std::string::npos) continue;
    size_t col = line.find_first_not_of(' ', gap);
    if (value_col == std::string::npos) value_col = col;
    EXPECT_EQ(col, value_col) << "misaligned: " << line;
    std::string k = line.substr(0, gap);
    k.erase(0, k.find_first_not_of(' '));
    if (k == key) found = line.substr(col);
  }
  return found;
}

TEST(Report, SecurityRowSaysHowTheChannelsAreProtected) {
  MigrationInfo i;
  i.status = MigrationStatus::kActive;
  i.authenticated = true;
  EXPECT_EQ(row(render_query_migrate(query_migrate_json(i)), "security"),
            "authenticated (pre-shared key); control channel encrypted and integrity-protected "
            "(AES-256-GCM); page data in clear");
  i.encryption = "TLS 1.3, TLS_AES_256_GCM_SHA384";
  Json qm = query_migrate_json(i);
  EXPECT_EQ(qm["__io.github.tern_channel-security"], "tls+psk");
  EXPECT_EQ(row(render_query_migrate(qm), "security"),
            "authenticated (x509 and pre-shared key), encrypted (TLS 1.3, "
            "TLS_AES_256_GCM_SHA384)");
  i.authenticated = false;
  qm = query_migrate_json(i);
  EXPECT_EQ(qm["__io.github.tern_channel-security"], "tls");
  EXPECT_EQ(row(render_query_migrate(qm), "security"),
            "authenticated (x509), encrypted (TLS 1.3, TLS_AES_256_GCM_SHA384)");
  const std::string summary = render_summary(make_summary(qm, qm, guest_with(10, 0), "", ""));
  EXPECT_NE(summary.find("authenticated (x509), encrypted (TLS 1.3"), std::string::npos)
      << summary;
  // dpdk, rdma: the TLS handshake keys the sealed control channel; pages are not in TLS.
  i.encryption = toolkit::kFrameTlsEncryption;
  qm = query_migrate_json(i);
  EXPECT_EQ(qm["__io.github.tern_channel-security"], "tls");
  EXPECT_EQ(row(render_query_migrate(qm), "security"),
            "authenticated (x509); control channel encrypted and integrity-protected "
            "(AES-256-GCM, keys from a TLS 1.3 handshake); page data in clear");
  i.page_integrity = true;
  EXPECT_NE(row(render_query_migrate(query_migrate_json(i)), "security")
                .find("page data in clear, integrity-protected"),
            std::string::npos);
}

TEST(Report, QueryMigrateTableUsesHumanUnits) {
  std::string t = render_query_migrate(completed_qm(1ull << 30));
  EXPECT_EQ(row(t, "status"), "completed") << t;
  EXPECT_EQ(row(t, "total"), "1.00 GiB") << t;
  EXPECT_EQ(row(t, "transferred"), "512.0 MiB") << t;
  EXPECT_EQ(row(t, "throughput"), "1000.0 MB/s") << t;
  EXPECT_EQ(row(t, "total time"), "1.50 s") << t;
  EXPECT_EQ(row(t, "postcopy fault latency"), "no postcopy faults") << t;
  EXPECT_EQ(render_query_migrate(Json({{"status", "none"}})), "status  none\n");
  EXPECT_EQ(render_query_migrate(Json::object()), "status  none\n");  // query-migrate before any
}

TEST(Report, SecurityRowSaysWhatIsProtected) {
  MigrationInfo i;
  i.status = MigrationStatus::kActive;
  i.authenticated = true;
  std::string t = render_query_migrate(query_migrate_json(i));
  EXPECT_NE(row(t, "security").find("control channel encrypted and integrity-protected"),
            std::string::npos)
      << t;
  EXPECT_NE(row(t, "security").find("page data in clear"), std::string::npos) << t;
  EXPECT_EQ(row(t, "security").find("integrity-protected (a tag per page"), std::string::npos)
      << t;
  i.page_integrity = true;
  Json qm = query_migrate_json(i);
  EXPECT_EQ(qm["__io.github.tern_page-integrity"], true);
  t = render_query_migrate(qm);
  EXPECT_NE(row(t, "security").find("page data in clear, integrity-protected (a tag per page, "
                                    "checked before use)"),
            std::string::npos)
      << t;
  i.page_integrity = false;
  i.authenticated = false;
  t = render_query_migrate(query_migrate_json(i));
  EXPECT_EQ(row(t, "security"), "NOT authenticated, not encrypted (--insecure)") << t;
}

TEST(Report, ProgressFromQueryMigrate) {
  Progress p = progress_from(completed_qm(1000));
  EXPECT_EQ(p.status, "completed");
  EXPECT_EQ(p.total, 1000u);
  EXPECT_EQ(p.transferred, 500u);
  EXPECT_DOUBLE_EQ(p.bytes_per_second, 1e9);
}

TEST(Report, SummaryOkOnlyWhenBothCompletedAndNoMismatch) {
  Json s = make_summary(completed_qm(64 << 20), completed_qm(64 << 20), guest_with(16384, 0),
                        "tcp:127.0.0.1:4444", "no RDMA device");
  std::string why;
  EXPECT_TRUE(summary_ok(s, &why)) << why;
  EXPECT_EQ(s["transport"]["name"], "tcp");
  EXPECT_EQ(s["transport"]["uri"], "tcp:127.0.0.1:4444");
  EXPECT_EQ(s["transport"]["reason"], "no RDMA device");
  EXPECT_EQ(s["verification"]["ok"], true);
  EXPECT_EQ(s["verification"]["full-check"], true);
  std::string text = render_summary(s);
  EXPECT_NE(text.find("16384 pages checked, 0 mismatches"), std::string::npos) << text;
  EXPECT_NE(text.find("result: OK"), std::string::npos) << text;

  Json bad = make_summary(completed_qm(1), completed_qm(1), guest_with(10, 2), "", "");
  EXPECT_FALSE(summary_ok(bad, &why));
  EXPECT_NE(why.find("2 page mismatches"), std::string::npos) << why;
  EXPECT_NE(render_summary(bad).find("result: FAILED"), std::string::npos);

  Json failed_qm = completed_qm(1);
  failed_qm["status"] = "failed";
  failed_qm["error-desc"] = "peer closed";
  Json f = make_summary(failed_qm, completed_qm(1), guest_with(10, 0), "", "");
  EXPECT_FALSE(summary_ok(f, &why));
  EXPECT_EQ(why, "source status is 'failed': peer closed");

  Json none = make_summary(completed_qm(1), completed_qm(1), Json::object(), "", "");
  EXPECT_FALSE(summary_ok(none, &why));
  EXPECT_NE(why.find("no page verification"), std::string::npos);
}

TEST(Report, FaultLatencyLine) {
  EXPECT_EQ(describe_fault_latency(Json::object()), "no postcopy faults");
  Json lat = {{"count", 12}, {"p50", 16}, {"p99", 64}, {"max", 80.2}};
  EXPECT_EQ(describe_fault_latency(lat), "12 faults, p50 <= 16 us, p99 <= 64 us, max 80.2 us");
}

}  // namespace
}  // namespace tern::control
