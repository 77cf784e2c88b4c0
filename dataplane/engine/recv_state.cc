#include "dataplane/engine/recv_state.h"

#include <chrono>

namespace tern::engine {

uint64_t now_ns() {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::nanoseconds>(
                                   std::chrono::steady_clock::now().time_since_epoch())
                                   .count());
}

static std::vector<BlockLanding> landings(const std::vector<RamBlock*>& blocks) {
  std::vector<BlockLanding> v;
  for (auto* b : blocks) v.push_back({b->base(), b->size(), b->host_page_size()});
  return v;
}

RecvState::RecvState(std::vector<RamBlock*> blocks_in, Layout layout_in)
    : blocks(std::move(blocks_in)),
      layout(std::move(layout_in)),
      direct(landings(blocks)),
      received(host_page_sizes(blocks), block_sizes(blocks)) {
  for (auto* b : blocks) {
    auto arr = std::make_unique<std::atomic<uint64_t>[]>(b->host_pages());
    for (uint64_t i = 0; i < b->host_pages(); ++i) arr[i].store(0, std::memory_order_relaxed);
    fault_time.push_back(std::move(arr));
  }
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
  uint64_t t0 = fault_time[block][hp].exchange(0, std::memory_order_acq_rel);
  if (t0) {
    fault_latency.record_ns(now_ns() - t0);
    outstanding.fetch_sub(1, std::memory_order_relaxed);
  }
}

}  // namespace tern::engine
