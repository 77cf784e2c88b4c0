#include "dpdk/detail/eal.h"

#include "dpdk/detail/thp_pool.h"

#include <pthread.h>
#include <rte_eal.h>
#include <rte_errno.h>
#include <rte_lcore.h>
#include <rte_log.h>
#include <rte_mbuf.h>
#include <sched.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <mutex>
#include <sstream>
#include <string>
#include <vector>

namespace tern::dpdk {
namespace {

// 16 Ki buffers of ~8.4 KiB (about 140 MiB of the EAL's anonymous memory, touched as used):
// a channel holds at most `window` segments on each side.
constexpr unsigned kPoolBuffers = 16383;
constexpr unsigned kHeaderBuffers = 32767;

struct Eal {
  Status status;
  rte_mempool* pool = nullptr;
  rte_mempool* headers = nullptr;
};

Eal& eal() {
  static Eal* e = new Eal;  // never destroyed: the EAL outlives static destructors
  return *e;
}

// Buffers each registered thread keeps to itself (register_thread): allocations and frees
// are then array operations, without the shared pool's lock.
constexpr unsigned kCacheBuffers = 256;

// A packet pool that hands out the buffer freed last ("stack" ops): the default ring pool is
// FIFO, cycling every receive through all of its buffers (~140 MB, so each one cold in cache)
// whenever the per-thread cache over- or underflows, or for a thread without one; a LIFO pool
// keeps the few hundred buffers in flight warm. The ring pool if the stack driver is missing.
// Without huge pages in the EAL (--no-huge), in memory of our own on transparent huge pages
// (thp_pool.h: a fault per 2 MiB, not per buffer).
rte_mempool* lifo_pool(const char* name, unsigned n, uint16_t data_room) {
  rte_mempool* p = nullptr;
  if (!rte_eal_has_hugepages())
    p = thp_pktmbuf_pool(name, n, kCacheBuffers, data_room, "stack");
  if (p != nullptr) return p;
  p = rte_pktmbuf_pool_create_by_ops(name, n, kCacheBuffers, 0, data_room, SOCKET_ID_ANY,
                                     "stack");
  return p != nullptr ? p
                      : rte_pktmbuf_pool_create(name, n, kCacheBuffers, 0, data_room,
                                                SOCKET_ID_ANY);
}

// A thread's registration as an EAL lcore: made when the thread first needs it (unless it is
// one of the EAL's own lcores), undone when it exits, which frees its lcore id for a later
// thread; buffers left in its cache are the next holder's.
struct LcoreRegistration {
  bool registered = rte_lcore_id() == LCORE_ID_ANY && rte_thread_register() == 0;
  ~LcoreRegistration() {
    if (registered) rte_thread_unregister();
  }
};

Status init() {
  // rte_eal_init pins the calling thread to the main lcore's CPU; tern pins its own workers,
  // so give the caller its affinity back afterwards.
  cpu_set_t saved;
  CPU_ZERO(&saved);
  const bool have_saved = pthread_getaffinity_np(pthread_self(), sizeof saved, &saved) == 0;
  int cpu = sched_getcpu();
  if (cpu < 0) cpu = 0;
  std::vector<std::string> args = {"tern",
                                   "-l",
                                   std::to_string(cpu),
                                   "--no-huge",
                                   "-m",
                                   "512",
                                   "--no-shconf",
                                   "--no-pci",
                                   "--no-telemetry",
                                   "--file-prefix=tern-" + std::to_string(::getpid()),
                                   "--log-level=*:error"};
  if (const char* extra = std::getenv("TERN_DPDK_EAL_ARGS")) {
    std::istringstream in(extra);
    for (std::string a; in >> a;) args.push_back(a);
  }
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  int r = rte_eal_init(static_cast<int>(args.size()), argv.data());
  if (have_saved) pthread_setaffinity_np(pthread_self(), sizeof saved, &saved);
  if (r < 0)
    return Status(Code::kUnavailable,
                  std::string("DPDK EAL cannot start: ") + rte_strerror(rte_errno));
  rte_mempool* pool = lifo_pool("tern_pkts", kPoolBuffers, kMaxFrameBytes + RTE_PKTMBUF_HEADROOM);
  if (pool == nullptr)
    return Status(Code::kUnavailable, std::string("DPDK packet pool: ") + rte_strerror(rte_errno));
  eal().pool = pool;
  // Zero-copy segments (tx_extbuf.h): a header mbuf plus one attached to guest memory; the
  // second uses none of its own data room.
  rte_mempool* headers = lifo_pool("tern_hdrs", kHeaderBuffers, RTE_PKTMBUF_HEADROOM + 128);
  if (headers == nullptr)
    return Status(Code::kUnavailable, std::string("DPDK header pool: ") + rte_strerror(rte_errno));
  eal().headers = headers;
  return Status::ok();
}

}  // namespace

const Status& eal_start() {
  static std::once_flag once;
  std::call_once(once, [] { eal().status = init(); });
  return eal().status;
}

void register_thread() {
  thread_local LcoreRegistration reg;  // constructed on a thread's first call only
  (void)reg;
}

rte_mempool* packet_pool() { return eal().pool; }
rte_mempool* header_pool() { return eal().headers; }

uint64_t now_us() {
  return std::chrono::duration_cast<std::chrono::microseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

}  // namespace tern::dpdk
