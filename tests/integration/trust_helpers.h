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
  p.connect_timeout = 3s;
  return p;
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
  void expect_never_switched_over() {
    std::lock_guard<std::mutex> lock(mu);
    for (MigrationStatus s : seen) {
      EXPECT_NE(s, MigrationStatus::kDevice);
      EXPECT_NE(s, MigrationStatus::kPostcopyActive);
      EXPECT_NE(s, MigrationStatus::kCompleted);
    }
  }
};

// One keyed precopy migration of a fresh 16 MiB guest to `uri` (into `in`), which must fail
// with `refusal` in the error of the source (`by_source`) or the destination; the source guest
// keeps running and never reaches switchover. `params`: the source's (a key by default).
inline void expect_refused_with(const std::string& refusal, bool by_source,
                                IncomingMigration& in, const std::string& uri,
                                const MigrationParameters& params = with_key(test_key('k'))) {
  auto guest = running_thread_guest(16ull << 20);
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
  trail.expect_never_switched_over();
}

}  // namespace tern::testing_support
