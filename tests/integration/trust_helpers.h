// Test support for migrations between two keyed engines (peer_trust_test, control_tamper_test):
// parameters with a key, the destination's notices, and "completes with 0 mismatches".
#pragma once

#include <gtest/gtest.h>

#include <memory>
#include <mutex>
#include <string>

#include "dataplane/peer_key.h"
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

}  // namespace tern::testing_support
