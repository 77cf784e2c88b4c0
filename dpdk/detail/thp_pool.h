// A packet-buffer pool in the process's own anonymous memory on transparent huge pages, for an
// EAL without huge pages (--no-huge). There the EAL's memory is a memfd on 4 KiB shmem pages
// (no THP for shmem by default), and creating a pool writes every buffer's header: about
// 20,000 page faults for tern's two pools, three quarters of a dpdk source's faults during a
// migration (issue 12). Here that is one fault per 2 MiB. The memory is not the EAL's, so it
// suits PMDs that copy with the CPU (memif, net_ring, af_packet), not DMA: callers use it only
// when rte_eal_has_hugepages() is false (then no PCI device is in use either: --no-pci).
//
// Threads: call after rte_eal_init, from one thread at a time.
#pragma once

#include <cstdint>

struct rte_mempool;

namespace tern::dpdk {

// A pktmbuf pool of n buffers with `data_room` bytes each, per-lcore cache `cache`, mempool ops
// `ops` (e.g. "stack"), or nullptr (rte_errno set) if any step fails; nothing is left behind.
rte_mempool* thp_pktmbuf_pool(const char* name, unsigned n, unsigned cache, uint16_t data_room,
                              const char* ops);

}  // namespace tern::dpdk
