// Test support for migrations between two keyed engines (peer_trust_test, control_tamper_test):
// parameters with a key, the destination's notices, and "completes with 0 mismatches".
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/peer_key.h"
#include "tests/dataplane/test_peer_key.h"
#include "tests/integration/migration_helpers.h"

namespace tern::testing_support {

using namespace std::chrono_literals;

inline MigrationParameters with_key(std::shared_ptr<const PeerKey> key) {
  MigrationParameters p;
  p.peer_key = std::move(key);
  // The rdma suite's VM (tiny scale) under load took over 3 s to connect a set of channels.
  p.connect_timeout = tiny_scale() ? 20s : 3s;
  return p;
}

// Tests of one transport (a man in the middle on tcp) run only in binaries whose
// TERN_IT_TRANSPORTS list it: the rdma suite's copy of these tests skips them.
inline bool transport_listed(const std::string& name) {
  for (const std::string t : {TERN_IT_TRANSPORTS})
    if (t == name) return true;
  return false;
}

struct Notices {
  std::mutex mu;
  std::string text;
  void attach(IncomingMigration& in) {
    in.on_notice([this](const Status& s) {
      std::lock_guard<std::mutex> lock(mu);
      text += s.to_string() + "\n";
    });
  }
  std::string all() {
    std::lock_guard<std::mutex> lock(mu);
    return text;
  }
};

inline void expect_completes_clean(Guest& guest, IncomingMigration& in, const std::string& uri,
                                   const MigrationParameters& params) {
  OutgoingMigration out(guest, {}, params);
  ASSERT_TRUE(out.start(uri).is_ok());
  ASSERT_EQ(out.wait(60s), MigrationStatus::kCompleted)
      << out.info().error << " (destination: " << in.info().error << ")";
  ASSERT_EQ(in.wait(30s), MigrationStatus::kCompleted) << in.info().error;
  EXPECT_TRUE(out.info().authenticated == (params.peer_key != nullptr));
  auto v = check_destination(in);
  ASSERT_TRUE(v.is_ok()) << v.status().to_string();
  EXPECT_GT(v->pages_checked, 0u);
  EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
}

// Records every status a source reports; outlives the migration whose callbacks write it.
struct StatusTrail {
  std::mutex mu;
  std::vector<MigrationStatus> seen;
  void attach(OutgoingMigration& out) {
    out.on_status([this](MigrationStatus s, const std::string&) {
      std::lock_guard<std::mutex> lock(mu);
      seen.push_back(s);
    });
  }
  // `paused_ok`: the source may have paused its guest for the final round (status device) and
  // resumed it, as when a page fails its check only at switchover (page integrity).
  void expect_never_switched_over(bool paused_ok = false) {
    std::lock_guard<std::mutex> lock(mu);
    for (MigrationStatus s : seen) {
      if (!paused_ok) {
        EXPECT_NE(s, MigrationStatus::kDevice);
      }
      EXPECT_NE(s, MigrationStatus::kPostcopyActive);
      EXPECT_NE(s, MigrationStatus::kCompleted);
    }
  }
};

// One keyed precopy migration of a fresh 16 MiB guest to `uri` (into `in`), which must fail
// with `refusal` in the error of the source (`by_source`) or the destination; the source guest
// keeps running and never reaches switchover. `params`: the source's (a key by default);
// `guest_rate`: pages/s its vCPUs write (prefilled when lower than the default); `paused_ok`:
// see StatusTrail (a refusal that may come only in the final round).
inline void expect_refused_with(const std::string& refusal, bool by_source,
                                IncomingMigration& in, const std::string& uri,
                                const MigrationParameters& params = with_key(test_key('k')),
                                uint32_t guest_rate = 2000, bool paused_ok = false) {
  auto guest = running_thread_guest(16ull << 20, guest_rate < 2000, guest_rate);
  ASSERT_TRUE(guest);
  StatusTrail trail;
  OutgoingMigration out(*guest, {}, params);
  trail.attach(out);
  ASSERT_TRUE(out.start(uri).is_ok());
  EXPECT_EQ(out.wait(30s), MigrationStatus::kFailed);
  EXPECT_EQ(in.wait(30s), MigrationStatus::kFailed);
  const std::string& error = by_source ? out.info().error : in.info().error;
  EXPECT_NE(error.find(refusal), std::string::npos)
      << "source: " << out.info().error << " / destination: " << in.info().error;
  EXPECT_TRUE(guest->running());
  trail.expect_never_switched_over(paused_ok);
}

// A keyed postcopy migration of a small guest whose pages the destination's vCPUs fault on
// (the push is throttled, so requests bring most pages). `params` for both sides.
struct KeyedPostcopy {
  std::unique_ptr<ThreadGuest> guest;
  std::unique_ptr<IncomingMigration> in;
  std::unique_ptr<OutgoingMigration> out;

  void run(const std::string& transport, MigrationParameters params = with_key(test_key('k'))) {
    WorkloadSpec spec;
    spec.vcpus = 2;
    spec.ram_bytes = 32ull << 20;
    spec.wss_fraction = 0.5;
    spec.rate = dirty_rate();
    spec.pattern = Pattern::kRandom;
    auto g = ThreadGuest::create(spec);
    ASSERT_TRUE(g.is_ok()) << g.status().to_string();
    guest = std::move(*g);
    ASSERT_TRUE(guest->start().is_ok());
    params.max_bandwidth = 2 << 20;  // faults, not the push, bring the pages
    in = std::make_unique<IncomingMigration>(make_thread_guest_factory(), params);
    auto uri = in->start(listen_uri(transport));
    ASSERT_TRUE(uri.is_ok()) << uri.status().to_string();
    MigrationCapabilities caps;
    caps.postcopy_ram = true;
    out = std::make_unique<OutgoingMigration>(*guest, caps, params);
    ASSERT_TRUE(out->start(*uri).is_ok());
    ASSERT_TRUE(out->start_postcopy().is_ok());
  }
  // Both sides completed, requests were served, the guest here checks out.
  void expect_completed_clean() {
    ASSERT_EQ(out->wait(120s), MigrationStatus::kCompleted)
        << out->info().error << " (destination: " << in->info().error << ")";
    ASSERT_EQ(in->wait(30s), MigrationStatus::kCompleted) << in->info().error;
    EXPECT_GT(in->info().stats.postcopy_requests, 0u);
    auto v = check_destination(*in);
    ASSERT_TRUE(v.is_ok()) << v.status().to_string();
    EXPECT_EQ(v->mismatches, 0u) << v->first_mismatch;
  }
};

}  // namespace tern::testing_support
