#include "control/migration_json.h"

#include <gtest/gtest.h>

#include <chrono>

#include "control/qmp_names.h"

namespace tern::control {
namespace {

MigrationInfo sample_info() {
  MigrationInfo i;
  i.status = MigrationStatus::kActive;
  i.transport = "tcp";
  MigrationStats& s = i.stats;
  s.transferred = 1000;
  s.remaining = 2000;
  s.total = 4096 * 3;
  s.duplicate = 5;
  s.normal = 6;
  s.normal_bytes = 6 * 4096;
  s.dirty_pages_rate = 7;
  s.mbps = 123.456;
  s.dirty_sync_count = 8;
  s.postcopy_requests = 9;
  s.precopy_bytes = 10;
  s.postcopy_bytes = 11;
  s.downtime = 12;
  s.total_time = 13;
  s.setup_time = 14;
  s.expected_downtime = 15;
  s.urgent_pages = 16;
  s.preemptions = 17;
  s.raised_requests = 18;
  s.discarded_pages = 19;
  s.free_page_hints = 20;
  s.free_pages_skipped = 21;
  s.free_page_hints_refused = 22;
  return i;
}

TEST(QueryMigrateJson, HasQemuShapeAndTernExtras) {
  Json j = query_migrate_json(sample_info());
  EXPECT_EQ(j["status"], "active");
  EXPECT_EQ(j["total-time"], 13);
  EXPECT_EQ(j["setup-time"], 14);
  EXPECT_EQ(j["downtime"], 12);
  EXPECT_EQ(j["expected-downtime"], 15);
  EXPECT_EQ(j[ext::kTransport], "tcp");
  EXPECT_FALSE(j.contains("error-desc"));
  const Json& ram = j["ram"];
  EXPECT_EQ(ram["transferred"], 1000);
  EXPECT_EQ(ram["remaining"], 2000);
  EXPECT_EQ(ram["total"], 4096 * 3);
  EXPECT_EQ(ram["duplicate"], 5);
  EXPECT_EQ(ram["normal"], 6);
  EXPECT_EQ(ram["normal-bytes"], 6 * 4096);
  EXPECT_EQ(ram["dirty-pages-rate"], 7);
  EXPECT_DOUBLE_EQ(ram["mbps"].get<double>(), 123.5);
  EXPECT_EQ(ram["dirty-sync-count"], 8);
  EXPECT_EQ(ram["postcopy-requests"], 9);
  EXPECT_EQ(ram["precopy-bytes"], 10);
  EXPECT_EQ(ram["postcopy-bytes"], 11);
  EXPECT_EQ(ram["page-size"], 4096);
  EXPECT_EQ(ram[ext::kUrgentPages], 16);
  EXPECT_EQ(ram[ext::kPreemptions], 17);
  EXPECT_EQ(ram[ext::kRaisedRequests], 18);
  EXPECT_EQ(ram[ext::kDiscardedPages], 19);
  EXPECT_EQ(ram[ext::kFreePageHints], 20);
  EXPECT_EQ(ram[ext::kFreePagesSkipped], 21);
  EXPECT_EQ(ram[ext::kFreePageHintsRefused], 22);
  EXPECT_EQ(j[ext::kPostcopyFaultLatency]["unit"], "us");
  EXPECT_EQ(j[ext::kPostcopyFaultLatency]["count"], 0);
  EXPECT_TRUE(j[ext::kPostcopyFaultLatency]["buckets"].empty());
}

TEST(QueryMigrateJson, NoneIsJustTheStatusAndFailedCarriesTheError) {
  MigrationInfo none;
  EXPECT_EQ(query_migrate_json(none), Json::object());  // as QEMU before any migration
  MigrationInfo failed = sample_info();
  failed.status = MigrationStatus::kFailed;
  failed.error = "protocol: frame for block 7 but the layout has 1 block";
  EXPECT_EQ(query_migrate_json(failed)["error-desc"], failed.error);
  failed.error.clear();
  EXPECT_FALSE(query_migrate_json(failed)["error-desc"].get<std::string>().empty());
}

TEST(FaultLatencyJson, PowerOfTwoBucketsAndQuantiles) {
  LatencyHistogram h;
  for (int i = 0; i < 98; ++i) h.record_ns(10'000);  // 10 us -> bucket [8, 16)
  h.record_ns(100'000);                              // 100 us -> [64, 128)
  h.record_ns(300'000);                              // 300 us -> [256, 512)
  Json j = fault_latency_json(h.snapshot());
  EXPECT_EQ(j["count"], 100);
  EXPECT_EQ(j["p50"], 16);
  EXPECT_EQ(j["p99"], 128);
  EXPECT_DOUBLE_EQ(j["max"].get<double>(), 300.0);
  const Json& b = j["buckets"];
  ASSERT_EQ(b.size(), 10u);  // le 1 .. le 512, trailing empty buckets cut
  EXPECT_EQ(b[0], Json({{"le", 1}, {"count", 0}}));
  EXPECT_EQ(b[4], Json({{"le", 16}, {"count", 98}}));
  EXPECT_EQ(b[9], Json({{"le", 512}, {"count", 1}}));
  EXPECT_DOUBLE_EQ(j["mean"].get<double>(), (98 * 10 + 100 + 300) / 100.0);
}

TEST(StatusNames, RoundTripAndTerminal) {
  for (auto s :
       {MigrationStatus::kNone, MigrationStatus::kSetup, MigrationStatus::kActive,
        MigrationStatus::kPostcopyActive, MigrationStatus::kDevice, MigrationStatus::kCompleted,
        MigrationStatus::kFailed, MigrationStatus::kCancelling, MigrationStatus::kCancelled,
        MigrationStatus::kPostcopyPaused, MigrationStatus::kPostcopyRecover}) {
    EXPECT_EQ(parse_qmp_status(qmp_status_name(s)), s);
  }
  EXPECT_EQ(parse_qmp_status("bogus"), std::nullopt);
  EXPECT_TRUE(is_terminal_status("completed"));
  EXPECT_TRUE(is_terminal_status("cancelled"));
  EXPECT_FALSE(is_terminal_status("postcopy-active"));
  EXPECT_FALSE(is_terminal_status("postcopy-paused"));
  EXPECT_EQ(std::string(qmp_status_name(MigrationStatus::kPostcopyPaused)), "postcopy-paused");
  EXPECT_EQ(std::string(qmp_status_name(MigrationStatus::kPostcopyRecover)), "postcopy-recover");
}

TEST(QueryMigrate, PausedSaysWhyAndCountsRecoveries) {
  MigrationInfo i;
  i.status = MigrationStatus::kPostcopyPaused;
  i.error = "postcopy paused: i/o error: peer closed channel 3";
  i.stats.postcopy_pauses = 2;
  i.stats.postcopy_recoveries = 1;
  i.stats.recovery_missing_pages = 17;
  Json j = query_migrate_json(i);
  EXPECT_EQ(j["status"], "postcopy-paused");
  EXPECT_EQ(j["error-desc"], i.error);
  EXPECT_EQ(j[ext::kPostcopyRecovery]["pauses"], 2);
  EXPECT_EQ(j[ext::kPostcopyRecovery]["recoveries"], 1);
  EXPECT_EQ(j[ext::kPostcopyRecovery]["missing-pages"], 17);
}

TEST(Capabilities, ApplyIsAllOrNothingAndNamesTheBadEntry) {
  MigrationCapabilities caps;
  Json ok = Json::parse(R"([{"capability": "postcopy-ram", "state": true},
                            {"capability": "postcopy-preempt", "state": true}])");
  ASSERT_TRUE(apply_capabilities(ok, caps).is_ok());
  EXPECT_TRUE(caps.postcopy_ram);
  EXPECT_TRUE(caps.postcopy_preempt);
  EXPECT_EQ(capabilities_json(caps)[1],
            Json({{"capability", "postcopy-preempt"}, {"state", true}}));

  MigrationCapabilities before = caps;
  Json bad = Json::parse(R"([{"capability": "postcopy-ram", "state": false},
                             {"capability": "x-colo", "state": true}])");
  Status s = apply_capabilities(bad, caps);
  EXPECT_FALSE(s.is_ok());
  EXPECT_NE(s.message().find("x-colo"), std::string::npos);
  EXPECT_NE(s.message().find("postcopy-ram, postcopy-preempt"), std::string::npos);
  EXPECT_TRUE(caps.postcopy_ram) << "a failed apply must not change anything";
  EXPECT_EQ(caps.postcopy_preempt, before.postcopy_preempt);

  MigrationCapabilities hint;
  ASSERT_TRUE(apply_capabilities(Json::array({{{"capability", ext::kFreePageHint}, {"state", true}}}),
                                 hint)
                  .is_ok());
  EXPECT_TRUE(hint.free_page_hint);
  EXPECT_EQ(capabilities_json(hint)[3], Json({{"capability", ext::kFreePageHint}, {"state", true}}));
  // tern 0.1's name is refused, pointing at the extension's name.
  s = apply_capabilities(Json::parse(R"([{"capability": "x-free-page-hint", "state": true}])"), hint);
  EXPECT_NE(s.message().find(std::string("named ") + ext::kFreePageHint + " now"), std::string::npos)
      << s.message();

  s = apply_capabilities(Json::parse(R"([{"capability": "postcopy-ram", "state": "on"}])"), caps);
  EXPECT_NE(s.message().find("capabilities[0].state must be a boolean"), std::string::npos);
  s = apply_capabilities(Json::object(), caps);
  EXPECT_FALSE(s.is_ok());
  MigrationCapabilities fresh;
  s = apply_capabilities(Json::parse(R"([{"capability": "postcopy-preempt", "state": true}])"),
                         fresh);
  EXPECT_NE(s.message().find("requires postcopy-ram"), std::string::npos);
}

TEST(Parameters, ApplyChecksTypesRangesAndNames) {
  MigrationParameters p;
  ASSERT_TRUE(apply_parameters({{"multifd-channels", 4}, {"max-bandwidth", 1000},
                                {"downtime-limit", 50}, {ext::kChunkSize, 131072}},
                               p)
                  .is_ok());
  EXPECT_EQ(p.multifd_channels, 4u);
  EXPECT_EQ(p.max_bandwidth, 1000u);
  EXPECT_EQ(p.downtime_limit_ms, 50u);
  EXPECT_EQ(p.chunk_size, 131072u);
  Json q = parameters_json(p);
  EXPECT_EQ(q["multifd-channels"], 4);
  EXPECT_EQ(q["downtime-limit"], 50);

  Status s = apply_parameters(Json::parse(R"({"multifd-channels": "4"})"), p);
  EXPECT_NE(s.message().find("'multifd-channels' must be a non-negative integer"),
            std::string::npos)
      << s.message();
  s = apply_parameters(Json::parse(R"({"multifd-channels": 0})"), p);
  EXPECT_NE(s.message().find("[1, 64]"), std::string::npos) << s.message();
  s = apply_parameters({{ext::kChunkSize, 12288}}, p);
  EXPECT_NE(s.message().find("power of two"), std::string::npos) << s.message();
  s = apply_parameters(Json::parse(R"({"x-chunk-size": 65536})"), p);
  EXPECT_NE(s.message().find(std::string("named ") + ext::kChunkSize + " now"), std::string::npos)
      << s.message();
  s = apply_parameters(Json::parse(R"({"downtime-limit": 10, "cpu-throttle": 3})"), p);
  EXPECT_NE(s.message().find("unknown parameter 'cpu-throttle'"), std::string::npos);
  EXPECT_EQ(p.downtime_limit_ms, 50u) << "a failed apply must not change anything";
  s = apply_parameters(Json::parse(R"({"max-bandwidth": -1})"), p);
  EXPECT_FALSE(s.is_ok());
}

TEST(Parameters, HandshakeTimeoutDefaultsTo10sAndBoundsBothConnectAndHello) {
  MigrationParameters p;
  EXPECT_EQ(parameters_json(p)[ext::kHandshakeTimeout], 10000);
  ASSERT_TRUE(apply_parameters({{ext::kHandshakeTimeout, 3000}}, p).is_ok());
  EXPECT_EQ(p.connect_timeout, std::chrono::milliseconds(3000));
  EXPECT_EQ(parameters_json(p)[ext::kHandshakeTimeout], 3000);
  Status s = apply_parameters({{ext::kHandshakeTimeout, 100}}, p);
  EXPECT_NE(s.message().find("[500, 3600000]"), std::string::npos) << s.message();
  EXPECT_EQ(p.connect_timeout, std::chrono::milliseconds(3000));
}

TEST(Parameters, PageIntegrityIsASwitchAndIsReported) {
  MigrationParameters p;
  EXPECT_EQ(parameters_json(p)[ext::kPageIntegrity], false);
  ASSERT_TRUE(apply_parameters({{ext::kPageIntegrity, true}}, p).is_ok());
  EXPECT_TRUE(p.page_integrity);
  EXPECT_EQ(parameters_json(p)[ext::kPageIntegrity], true);
  ASSERT_TRUE(apply_parameters({{ext::kPageIntegrity, 0}}, p).is_ok());
  EXPECT_FALSE(p.page_integrity);
  ASSERT_TRUE(apply_parameters({{ext::kPageIntegrity, 1}}, p).is_ok());
  EXPECT_TRUE(p.page_integrity);
  EXPECT_FALSE(apply_parameters({{ext::kPageIntegrity, 2}}, p).is_ok());
  EXPECT_FALSE(apply_parameters({{ext::kPageIntegrity, "yes"}}, p).is_ok());
  MigrationInfo i;
  i.status = MigrationStatus::kActive;
  EXPECT_EQ(query_migrate_json(i)[ext::kPageIntegrity], false);
  i.page_integrity = true;
  EXPECT_EQ(query_migrate_json(i)[ext::kPageIntegrity], true);
}

TEST(Parameters, TlsNamesWhatTerndDefinedAndIsReported) {
  MigrationParameters p;
  // No credential set defined: only "" is a valid tls-creds.
  Status s = apply_parameters({{"tls-creds", "tls0"}}, p);
  EXPECT_EQ(s.code(), Code::kInvalidArgument);
  EXPECT_NE(s.message().find("--tls-creds DIR defines tls0"), std::string::npos) << s.message();
  auto cat = std::make_shared<TlsCatalog>();
  cat->creds["tls0"] = nullptr;  // the ids are what is checked here
  cat->authz["authz0"] = nullptr;
  cat->required = true;
  p.tls_catalog = cat;
  ASSERT_TRUE(apply_parameters({{"tls-creds", "tls0"}, {"tls-authz", "authz0"},
                                {"tls-hostname", "dst.example"}}, p).is_ok());
  Json j = parameters_json(p);
  EXPECT_EQ(j["tls-creds"], "tls0");
  EXPECT_EQ(j["tls-authz"], "authz0");
  EXPECT_EQ(j["tls-hostname"], "dst.example");
  EXPECT_FALSE(apply_parameters({{"tls-creds", "/etc/pki/tern"}}, p).is_ok());
  EXPECT_FALSE(apply_parameters({{"tls-authz", "authz1"}}, p).is_ok());
  EXPECT_FALSE(apply_parameters({{"tls-hostname", 5}}, p).is_ok());
  s = apply_parameters({{"tls-creds", ""}}, p);  // TLS is this ternd's only authentication
  EXPECT_NE(s.message().find("cannot be cleared"), std::string::npos) << s.message();
  cat->required = false;
  EXPECT_TRUE(apply_parameters({{"tls-creds", ""}}, p).is_ok());
  EXPECT_EQ(p.tls.creds, "");
}

TEST(VerifyJson, NamesTheFirstMismatchOnlyWhenThereIsOne) {
  VerifyReport r;
  r.pages_checked = 10;
  EXPECT_FALSE(verify_json(r).contains("first-mismatch"));
  r.mismatches = 1;
  r.first_mismatch = "page 3: version 2, expected 3";
  Json j = verify_json(r);
  EXPECT_EQ(j["pages-checked"], 10);
  EXPECT_EQ(j["mismatches"], 1);
  EXPECT_EQ(j["first-mismatch"], r.first_mismatch);
  EXPECT_FALSE(j.contains("first-touch-latency")) << "no touch checked, no histogram";
}

TEST(VerifyJson, CarriesTheFirstTouchLatencyHistogram) {
  VerifyReport r;
  r.touched_checked = 3;
  r.first_touch_latency.counts[0] = 2;  // < 1 us: pages already there
  r.first_touch_latency.counts[5] = 1;  // [16, 32) us: one fault
  r.first_touch_latency.total = 3;
  Json j = verify_json(r);
  ASSERT_TRUE(j.contains("first-touch-latency"));
  EXPECT_EQ(j["first-touch-latency"]["count"], 3);
  EXPECT_EQ(j["first-touch-latency"]["p50"], 1);
  EXPECT_EQ(j["first-touch-latency"]["p99"], 32);
}

}  // namespace
}  // namespace tern::control
