#include "dpdk/detail/thp_pool.h"

#include <rte_errno.h>
#include <rte_mbuf.h>
#include <rte_mempool.h>
#include <sys/mman.h>

#include <cerrno>
#include <cstdint>

namespace tern::dpdk {
namespace {

constexpr size_t kHuge = 2u << 20;

void unmap_chunk(rte_mempool_memhdr*, void* opaque) {
  auto* region = static_cast<size_t*>(opaque);  // {base, length} of the mapping
  munmap(reinterpret_cast<void*>(region[0]), region[1]);
  delete[] region;
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
  auto* region = new size_t[2]{reinterpret_cast<size_t>(raw), length};
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
