// Keeps memif's control handling on the EAL interrupt thread apart from rx/tx bursts.
//
// DPDK 22.11's memif handles a peer's departure on the EAL interrupt thread: memif_disconnect
// clears the port's connected flag and unmaps the shared regions at once, while another thread
// may be inside rx/tx_burst on those regions (its connected check already passed). A source
// whose destination was killed died there of SIGSEGV. So every interrupt callback the memif
// PMD registers runs under an exclusive lock (tern interposes rte_intr_callback_register and
// its unregister calls: intr_guard.cc), and every burst tern makes holds that lock shared.
// Writers are preferred, so bursting threads cannot starve the interrupt thread.
//
// Threads: bursts from any channel thread; the exclusive side only on the EAL interrupt thread.
#pragma once

#include <rte_ethdev.h>

namespace tern::dpdk {

// Shared side of the lock, held around one burst.
void burst_lock();
void burst_unlock();

inline uint16_t guarded_tx_burst(uint16_t port, uint16_t q, rte_mbuf** pkts, uint16_t n) {
  burst_lock();
  const uint16_t sent = rte_eth_tx_burst(port, q, pkts, n);
  burst_unlock();
  return sent;
}

inline uint16_t guarded_rx_burst(uint16_t port, uint16_t q, rte_mbuf** pkts, uint16_t n) {
  burst_lock();
  const uint16_t got = rte_eth_rx_burst(port, q, pkts, n);
  burst_unlock();
  return got;
}

// How many memif interrupt callbacks ran under the lock (tests: the interposition is live).
uint64_t guarded_callbacks_run();

}  // namespace tern::dpdk
