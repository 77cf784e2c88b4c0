#include "dataplane/engine/recv_state.h"

#include <cerrno>
#include <chrono>

namespace tern::engine {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

// Precopy lands pages of 4 KiB blocks whose guest runs on another mapping of their file (a
// VMM's memfd) by writing the file (landing.h). Not hugetlbfs, nor a file on transparent huge
// pages (no zeroing saved: a fresh huge page is zeroed either way; one fault per 2 MiB, and
// the payload is read straight into place instead of through a buffer), nor a memfd the guest
// runs on here: stores map its pages for it, which it would otherwise fault in later, through
// userfaultfd where postcopy registers minor faults.
static std::vector<BlockLanding> landings(const std::vector<RamBlock*>& blocks) {
  std::vector<BlockLanding> v;
  for (auto* b : blocks) {
    BlockLanding l{b->base(), b->size(), b->host_page_size()};
    if (b->fd() >= 0 && !b->hugetlb() && b->mapped_elsewhere() && !b->file_huge_pages()) {
      l.file = b->fd();
      l.file_offset = b->fd_offset();
    }
    v.push_back(l);
  }
  return v;
}

RecvState::RecvState(std::vector<RamBlock*> blocks_in, Layout layout_in)
    : blocks(std::move(blocks_in)),
      layout(std::move(layout_in)),
      direct(landings(blocks)),
      received(host_page_sizes(blocks), block_sizes(blocks)) {
  for (auto* b : blocks)
    fault_time.emplace_back(b->host_pages());
}

void RecvState::enable_page_integrity() {
  page_integrity = true;
  unverified = std::make_unique<MigrationBitmap>(host_page_sizes(blocks), block_sizes(blocks));
}

uint64_t RecvState::unverified_pages(uint32_t* block, uint64_t* offset) const {
  if (!unverified) return 0;
  uint64_t n = 0;
  for (uint32_t b = 0; b < blocks.size(); ++b) {
    const AtomicBitmap& map = unverified->block(b);
    const size_t first = map.find_next_set(0);
    if (first < map.size() && n == 0) {
      *block = b;
      *offset = first * uint64_t{blocks[b]->host_page_size()};
    }
    n += map.count();
  }
  return n;
}

void RecvState::take_received() {
  taken = std::make_unique<MigrationBitmap>(host_page_sizes(blocks), block_sizes(blocks));
  for (uint32_t b = 0; b < blocks.size(); ++b) {
    const AtomicBitmap& got = received.block(b);
    for (size_t p = got.find_next_set(0); p < got.size(); p = got.find_next_set(p + 1))
      taken->block(b).set(p);
  }
}

std::vector<BlockLanding> RecvState::postcopy_landings() {
  std::vector<BlockLanding> v = direct.blocks();
  for (uint32_t b = 0; b < v.size(); ++b)
    if (b < page_cache.size() && page_cache[b]) {
      v[b].page_cache = page_cache[b]->base();
      v[b].taken = &taken->block(b);
    }
  return v;
}

int RecvState::install(uint32_t b, uint64_t first, uint64_t count, bool allocate) {
  RamBlock* rb = blocks[b];
  const uint64_t hp = rb->host_page_size();
  if (allocate)
    if (int rc = page_cache[b]->allocate(first * hp, count * hp); rc != 0) return rc;
  uint8_t* dst = rb->base() + first * hp;
  int rc = uffd->install(dst, count * hp);
  if (rc == 0) counters.installed_pages.fetch_add(count, std::memory_order_relaxed);
  if (rc != -EEXIST || count == 1) return rc;
  // Some host page of the run is in place already (a request answered on another channel:
  // the same zeros, the source is stopped): install the rest one by one.
  for (uint64_t p = 0; p < count; ++p) {
    rc = uffd->install(dst + p * hp, hp);
    if (rc == 0) counters.installed_pages.fetch_add(1, std::memory_order_relaxed);
    if (rc != 0 && rc != -EEXIST) return rc;
  }
  return -EEXIST;
}

int RecvState::block_of(const uint8_t* p) const {
  for (size_t i = 0; i < blocks.size(); ++i)
    if (p >= blocks[i]->base() && p < blocks[i]->base() + blocks[i]->size())
      return static_cast<int>(i);
  return -1;
}

uint64_t RecvState::total_host_pages() const {
  uint64_t n = 0;
  for (auto* b : blocks) n += b->host_pages();
  return n;
}

void RecvState::page_placed(uint32_t block, uint64_t hp) {
  // Order matters: the fault poller re-checks `received` after publishing a fault time, so
  // setting the bit first means no fault time can be left behind unanswered.
  received.block(block).set(hp);
  answered(fault_time[block][hp].exchange(0, std::memory_order_acq_rel));
}

void RecvState::answered(uint64_t fault_ns) {
  if (fault_ns == 0) return;
  fault_latency.record_ns(now_ns() - fault_ns);
  outstanding.fetch_sub(1, std::memory_order_relaxed);
}

int RecvState::leave_hole(uint32_t block, uint64_t hp) {
  // Same order as page_placed: a fault published after the exchange sees the bit (FaultPoller).
  received.block(block).set(hp);
  const uint64_t t0 = fault_time[block][hp].exchange(0, std::memory_order_acq_rel);
  if (t0 == 0) return 0;
  int rc = install(block, hp, 1, /*allocate=*/true);
  answered(t0);
  return rc == -EEXIST ? 0 : rc;
}

}  // namespace tern::engine
