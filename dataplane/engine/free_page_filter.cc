#include "dataplane/engine/free_page_filter.h"

#include <algorithm>

namespace tern::engine {

Status FreePageFilter::start() {
  if (reporting_) return Status::ok();
  if (Status s = guest_.start_free_page_reporting(); !s.is_ok()) return s;
  reporting_ = true;
  return Status::ok();
}

void FreePageFilter::stop() {
  if (!reporting_) return;
  reporting_ = false;
  guest_.stop_free_page_reporting();
}

uint64_t FreePageFilter::sync() {
  if (reporting_) {
    scratch_.clear();
    guest_.take_free_pages(scratch_);
    takes_.fetch_add(1, std::memory_order_relaxed);
    apply(scratch_);
  }
  // After the hints, never before: a hinted page written since its report is set again here.
  return guest_.collect_dirty(state_.dirty);
}

// A page a bulk lane is sending now (its slot's in_progress) keeps its bit. Its dirty instance
// being sent was claimed already (the claim cleared the bit), so a bit set now records a write
// made since the claim, possibly while the lane read the page: that newer instance is what
// repairs a torn copy at the destination. Under the guest's contract a hint for the page would
// make that instance dead too, but the saving is one page and the cost of a late report (a
// VMM relaying hints over a protocol) would be a torn page: we keep it. The claim protocol
// itself needs nothing more: the bit is cleared with an atomic fetch_and of its word, so a
// lane's test-and-clear of the same page either wins (and sends the page whole) or finds it
// clear (and sends nothing), and neighbours' bits in the word are untouched.
bool FreePageFilter::in_flight(uint32_t block, uint64_t hp) const {
  const uint64_t key = page_key(block, hp);
  for (uint32_t k = 0; k < state_.bulk_channels; ++k)
    if (state_.slots[k].in_progress.load(std::memory_order_acquire) == key) return true;
  return false;
}

void FreePageFilter::apply(std::vector<Range>& hints) {
  // Refuse what lies outside RAM; merge the rest so that a host page covered by several
  // adjacent ranges of this take counts as covered.
  size_t kept = 0;
  for (const Range& r : hints) {
    if (Status s = check_free_page_range(state_.blocks, r); !s.is_ok()) {
      if (refused_.fetch_add(1, std::memory_order_relaxed) == 0) {
        std::lock_guard<std::mutex> lock(mu_);
        first_refusal_ = s.message();
      }
      continue;
    }
    hints[kept++] = r;
  }
  hints.resize(kept);
  std::sort(hints.begin(), hints.end(), [](const Range& a, const Range& b) {
    return a.block != b.block ? a.block < b.block : a.offset < b.offset;
  });
  uint64_t accepted = 0, skipped = 0, flight = 0;
  size_t i = 0;
  while (i < hints.size()) {
    const uint32_t b = hints[i].block;
    uint64_t begin = hints[i].offset, end = begin + hints[i].length;
    for (++i; i < hints.size() && hints[i].block == b && hints[i].offset <= end; ++i)
      end = std::max(end, hints[i].offset + hints[i].length);
    accepted += (end - begin) / kTargetPageSize;
    const uint64_t hp_size = state_.blocks[b]->host_page_size();
    AtomicBitmap& dirty = state_.dirty.block(b);
    for (uint64_t hp = (begin + hp_size - 1) / hp_size; hp < end / hp_size; ++hp) {
      if (!dirty.test(hp)) continue;
      if (in_flight(b, hp)) {
        ++flight;
        continue;
      }
      if (dirty.test_and_clear(hp)) skipped += hp_size / kTargetPageSize;
    }
  }
  hints_.fetch_add(accepted, std::memory_order_relaxed);
  skipped_.fetch_add(skipped, std::memory_order_relaxed);
  in_flight_.fetch_add(flight, std::memory_order_relaxed);
}

FreePageFilter::Counters FreePageFilter::counters() const {
  return {hints_.load(std::memory_order_relaxed), skipped_.load(std::memory_order_relaxed),
          refused_.load(std::memory_order_relaxed), in_flight_.load(std::memory_order_relaxed),
          takes_.load(std::memory_order_relaxed)};
}

std::string FreePageFilter::first_refusal() const {
  std::lock_guard<std::mutex> lock(mu_);
  return first_refusal_;
}

}  // namespace tern::engine
