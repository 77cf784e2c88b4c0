// The EAL, started once per process by the first DPDK transport (or dpdk_can_start) and never
// stopped: DPDK cannot re-initialise in a process. Options: --no-huge (anonymous memory, so no
// hugepages need reserving), --no-shconf and a per-process --file-prefix (several tern
// processes on one host never share DPDK state), --no-pci (only virtual devices: memif,
// net_ring, af_packet; a real NIC needs a build that drops it, see docs/dpdk.md).
// Extra EAL arguments come from TERN_DPDK_EAL_ARGS (space-separated), e.g. "-m 1024".
//
// Threads: any; the first call initialises under a once-flag.
#pragma once

#include <cstdint>

#include "dataplane/status.h"

struct rte_mempool;

namespace tern::dpdk {

// OK once the EAL is up; the same (sticky) failure on every call otherwise.
const Status& eal_start();
// The packet-buffer pool every port and channel of this process shares (after eal_start).
rte_mempool* packet_pool();
// Small buffers (128 bytes of data room) for zero-copy segments' headers and attachments.
rte_mempool* header_pool();
// Makes the calling thread an EAL lcore, once per thread and undone when it exits, so the
// pools (ours, and the PMD's allocations and frees inside rx/tx bursts) serve it from a
// per-thread cache instead of the shared pool. Beyond RTE_MAX_LCORE threads, the rest run
// uncached (slower, still correct). Called by every channel entry point.
void register_thread();
// Bytes of segment (Ethernet frame) a pool buffer holds.
inline constexpr uint32_t kMaxFrameBytes = 8192 + 128;
// Monotonic microseconds (the retransmission clock).
uint64_t now_us();

}  // namespace tern::dpdk
