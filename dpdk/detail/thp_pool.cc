#include "dpdk/detail/thp_pool.h"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>
#include <list>
#include <mutex>

namespace tern::dpdk {
namespace {

constexpr size_t kHuge = 2u << 20;

// The mappings handed to pools, {base, length}; held here (a global root) for as long as a
// pool uses them: pools live until the process ends, and a pointer kept only in EAL memory
// would read as a leak.
struct Region {
  void* base;
  size_t length;
};
// Never destroyed: a pool freed at exit may still unmap its chunk after static destructors.
std::mutex& regions_mu = *new std::mutex;
std::list<Region>& regions = *new std::list<Region>;

Region* keep_region(void* base, size_t length) {
  std::lock_guard lock(regions_mu);
  return &regions.emplace_back(Region{base, length});
}

void unmap_chunk(rte_mempool_memhdr*, void* opaque) {
  auto* region = static_cast<Region*>(opaque);
  munmap(region->base, region->length);
  std::lock_guard lock(regions_mu);
  regions.remove_if([&](const Region& r) { return &r == region; });
}

}  // namespace

rte_mempool* thp_pktmbuf_pool(const char* name, unsigned n, unsigned cache, uint16_t data_room,
                              const char* ops) {
  const unsigned elt_size = sizeof(rte_mbuf) + data_room;
  rte_mempool* mp = rte_mempool_create_empty(name, n, elt_size, cache,
                                             sizeof(rte_pktmbuf_pool_private), SOCKET_ID_ANY, 0);
  if (mp == nullptr) return nullptr;
  rte_pktmbuf_pool_private priv{};
  priv.mbuf_data_room_size = data_room;
  if (rte_mempool_set_ops_byname(mp, ops, nullptr) != 0) {
    rte_mempool_free(mp);
    return nullptr;
  }
  rte_pktmbuf_pool_init(mp, &priv);
  // Objects do not straddle a 2 MiB page: at most one object's worth lost per page.
  rte_mempool_objsz sz{};
  const size_t obj = rte_mempool_calc_obj_size(elt_size, 0, &sz);
  const size_t payload = size_t{n} * obj;
  const size_t bytes = payload + (payload / kHuge + 1) * obj;
  // Room to start on a 2 MiB boundary, so that every 2 MiB of the pool can be one huge page.
  const size_t length = bytes + kHuge;
  void* raw = mmap(nullptr, length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (raw == MAP_FAILED) {
    rte_mempool_free(mp);
    rte_errno = ENOMEM;
    return nullptr;
  }
  (void)madvise(raw, length, MADV_HUGEPAGE);
  auto* aligned = reinterpret_cast<char*>(
      (reinterpret_cast<uintptr_t>(raw) + kHuge - 1) & ~uintptr_t{kHuge - 1});
  Region* region = keep_region(raw, length);
  const int r = rte_mempool_populate_virt(mp, aligned, bytes, kHuge,
                                          unmap_chunk, region);
  if (r < 0 || mp->populated_size != mp->size) {
    if (r <= 0) unmap_chunk(nullptr, region);  // not handed to the pool
    rte_mempool_free(mp);                      // frees what it was handed
    rte_errno = r < 0 ? -r : ENOMEM;
    return nullptr;
  }
  rte_mempool_obj_iter(mp, rte_pktmbuf_init, nullptr);
  return mp;
}

}  // namespace tern::dpdk
