// S5 free page hinting on the source: the pages the guest reports free are cleared from the
// migration bitmap at each dirty sync, before the dirty log is applied.
//
// The order is the whole point (../shared/reference 003, design.md S5):
//   1. the dirty log is on before start() asks the guest to report (the caller's job:
//      Guest::start_dirty_log, then FreePageFilter::start);
//   2. at each sync: take the hints, clear them in the bitmap, THEN apply the dirty log. A page
//      reported free and written afterwards shows up in that dirty log (or a later one) and is
//      sent; the guest keeps no reserve of free pages and never waits for the host;
//   3. at the end (or at the switch to postcopy) stop() tells the guest to stop reporting.
// Hints are target-page ranges; a host page is cleared only when one take covers all of it
// (hints are never pooled across takes: a page reused between two takes would be lost).
// Hints outside the guest's RAM are refused (counted, first error kept), never applied.
//
// Threads: start/sync/stop from the migration control thread; counters() from any thread.
// The bitmap is shared with the sender pollers, which claim pages while sync() runs.
#pragma once

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/engine/send_state.h"
#include "dataplane/guest.h"

namespace tern::engine {

class FreePageFilter {
 public:
  struct Counters {
    uint64_t hints = 0;      // target pages the guest reported free (accepted hints)
    uint64_t skipped = 0;    // target pages taken out of the bitmap: dirty, but free, not sent
    uint64_t refused = 0;    // hint ranges refused (outside RAM, misaligned)
    uint64_t in_flight = 0;  // host pages hinted while a bulk lane was sending them: kept
    uint64_t takes = 0;
  };

  FreePageFilter(Guest& guest, SendState& state) : guest_(guest), state_(state) {}

  // Asks the guest to start reporting. The dirty log must be on already.
  Status start();
  // One dirty sync: take hints, clear them, then Guest::collect_dirty into the bitmap. Returns
  // collect_dirty's count.
  uint64_t sync();
  // The guest stops reporting; later syncs only apply the dirty log. Idempotent.
  void stop();

  // Applies one take's hints to the bitmap (sync()'s middle step; tests call it directly).
  void apply(std::vector<Range>& hints);

  Counters counters() const;
  std::string first_refusal() const;
  bool reporting() const { return reporting_; }

 private:
  bool in_flight(uint32_t block, uint64_t hp) const;

  Guest& guest_;
  SendState& state_;
  bool reporting_ = false;        // control thread
  std::vector<Range> scratch_;    // control thread
  std::atomic<uint64_t> hints_{0}, skipped_{0}, refused_{0}, in_flight_{0}, takes_{0};
  mutable std::mutex mu_;         // guards first_refusal_
  std::string first_refusal_;
};

}  // namespace tern::engine
