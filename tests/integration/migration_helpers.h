// Shared pieces of the end-to-end migration tests: guest sizes by scale, unique endpoints,
// and running one whole migration between two engines in this process.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <memory>
#include <string>

#include "dataplane/migration.h"
#include "dataplane/ram_block.h"
#include "vm/self_check.h"
#include "vm/thread_guest.h"
#include "vm/workload.h"

// The transports the whole-migration tests run over; the rdma suite (tests/rdma) builds them
// with TERN_IT_TRANSPORTS="rdma".
#ifndef TERN_IT_TRANSPORTS
#define TERN_IT_TRANSPORTS "loopback", "tcp"
#endif

namespace tern::testing_support {

// TERN_TEST_SCALE=small (sanitizer builds) shrinks the guests.
inline bool small_scale() {
  const char* s = std::getenv("TERN_TEST_SCALE");
  return s && std::string(s) == "small";
}
// TERN_TEST_SCALE=tiny (the rdma suite's VM, whose emulated CPUs move ~25 MB/s) shrinks them
// further and slows the guest's writers to match.
inline bool tiny_scale() {
  const char* s = std::getenv("TERN_TEST_SCALE");
  return s && std::string(s) == "tiny";
}
inline uint64_t guest_bytes() {
  return tiny_scale() ? (32ull << 20) : small_scale() ? (128ull << 20) : (1ull << 30);
}
// Target pages per second per vCPU that the test guests dirty.
inline uint32_t dirty_rate() { return tiny_scale() ? 500 : 5000; }

// A listen URI for `transport` that no other test uses.
inline std::string listen_uri(const std::string& transport) {
  static int counter = 0;
  if (transport == "tcp") return "tcp:127.0.0.1:0";
  if (transport == "rdma") {  // an address of the RDMA device's netdev (the VM's rxe0: 10.77.0.1)
    const char* ip = std::getenv("TERN_RDMA_IP");
    return std::string("rdma:") + (ip && *ip ? ip : "127.0.0.1") + ":0";
  }
  return "loopback:it-" + std::to_string(::getpid()) + "-" + std::to_string(++counter);
}

// Reserves hugetlb pages for source + destination; returns "" or why it could not.
inline std::string reserve_for(uint64_t ram_bytes, uint32_t page_size) {
  if (page_size != kHugePage) return "";
  auto r = reserve_huge_pages(2 * (ram_bytes / kHugePage) + 8);
  return r.is_ok() ? "" : r.status().to_string();
}

// The destination guest's check of every page (vm/self_check.h), as ternd runs it when a
// migration completes.
inline Result<VerifyReport> check_destination(IncomingMigration& in) {
  Guest* guest = in.guest();
  if (guest == nullptr) return Status(Code::kUnavailable, "the destination has no guest");
  return check_guest(*guest);
}

// A started thread guest of `ram` bytes, 2 vCPUs writing its whole RAM at `rate` pages/s;
// nullptr (with a test failure) if it cannot be made.
// `prefill`: every working-set page holds data before the guest starts (a migration of it has
// all of RAM to move, not just what the workload wrote so far).
inline std::unique_ptr<ThreadGuest> running_thread_guest(uint64_t ram, bool prefill = false,
                                                         uint32_t rate = 2000) {
  WorkloadSpec spec;
  spec.vcpus = 2;
  spec.ram_bytes = ram;
  spec.wss_fraction = 1.0;
  spec.rate = rate;
  auto g = ThreadGuest::create(spec);
  EXPECT_TRUE(g.is_ok()) << g.status().to_string();
  if (!g) return nullptr;
  if (prefill) {
    EXPECT_TRUE((*g)->prefill().is_ok());
  }
  EXPECT_TRUE((*g)->start().is_ok());
  return std::move(*g);
}

struct MigrationRun {
  MigrationInfo source, destination;
  bool source_running_after = false;
};

}  // namespace tern::testing_support
