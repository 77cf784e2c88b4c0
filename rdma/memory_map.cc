#include "rdma/memory_map.h"

#include <algorithm>

namespace tern::rdma {

MemoryMap::~MemoryMap() { release(); }

void MemoryMap::release() {
  std::lock_guard<std::mutex> lock(mu_);
  remote_write_.store(false, std::memory_order_release);
  // A chunk is marked failed before it is deregistered, and its Region is left as it was (a
  // copy is deregistered), so that a lookup racing with this reads no torn key: at worst an
  // old one, which the device then refuses.
  for (Range& r : ranges_)
    for (size_t i = 0; i < r.count; ++i)
      if (r.chunks[i].state.exchange(-1, std::memory_order_acq_rel) == 1) {
        Region copy = r.chunks[i].region;
        ProtectionDomain::deregister(copy);
      }
}

void MemoryMap::add(void* addr, size_t len, Registrar reg, bool remote_write) {
  if (len == 0) return;
  if (remote_write) remote_write_.store(true, std::memory_order_release);
  Range r;
  r.begin = reinterpret_cast<uintptr_t>(addr);
  r.end = r.begin + len;
  r.reg = std::move(reg);
  r.count = (len + kChunk - 1) / kChunk;
  r.chunks = std::make_unique<Chunk[]>(r.count);
  ranges_.push_back(std::move(r));
  std::sort(ranges_.begin(), ranges_.end(),
            [](const Range& x, const Range& y) { return x.begin < y.begin; });
}

bool MemoryMap::register_chunk(Range& r, size_t i) {
  std::lock_guard<std::mutex> lock(mu_);
  Chunk& c = r.chunks[i];
  if (int s = c.state.load(std::memory_order_acquire); s != 0) return s == 1;
  const uintptr_t b = r.begin + i * kChunk;
  const size_t len = std::min<uintptr_t>(kChunk, r.end - b);
  auto region = r.reg(reinterpret_cast<void*>(b), len);
  if (!region) {
    c.state.store(-1, std::memory_order_release);
    return false;
  }
  c.region = *region;
  c.state.store(1, std::memory_order_release);
  return true;
}

bool MemoryMap::lookup(const void* addr, size_t len, Registered* out) {
  const auto a = reinterpret_cast<uintptr_t>(addr);
  auto it = std::upper_bound(ranges_.begin(), ranges_.end(), a,
                             [](uintptr_t v, const Range& r) { return v < r.begin; });
  if (it == ranges_.begin()) return false;
  Range& r = *--it;
  if (a + len > r.end) return false;
  const size_t i = (a - r.begin) / kChunk;
  if ((a + len - 1 - r.begin) / kChunk != i) return false;  // straddles two chunks: copy
  Chunk& c = r.chunks[i];
  int s = c.state.load(std::memory_order_acquire);
  if (s == 0) s = register_chunk(r, i) ? 1 : -1;
  if (s != 1) return false;
  *out = {c.region.addr, c.region.len, c.region.lkey, c.region.rkey};
  return true;
}

size_t MemoryMap::registered_chunks() const {
  size_t n = 0;
  for (const Range& r : ranges_)
    for (size_t i = 0; i < r.count; ++i) n += r.chunks[i].state.load() == 1;
  return n;
}

}  // namespace tern::rdma
