// Zero-copy transmit: a segment whose payload stays in guest memory. The segment is a chain of
// two mbufs from the header pool: the first holds the Ethernet + SegHeader + FrameHeader bytes,
// the second is attached (rte_pktmbuf_attach_extbuf) to the fragment's bytes where they are.
// Every segment of one frame shares that frame's ExtRef, whose DPDK reference count says how
// many mbufs still point into the page; when the last one is freed (the window let go of the
// acknowledged segment and the PMD finished with every copy it was handed), DPDK calls the
// free callback and the frame may be reported complete: the page's bytes are no longer needed.
//
// The ExtRef has two owners, the channel's slot and the DPDK side (the callback); whichever
// lets go last deletes it, so an mbuf a PMD still holds after the channel is gone is harmless.
//
// Threads: the callback may run on any thread that frees an mbuf; `done` is atomic.
#pragma once

#include <rte_mbuf.h>

#include <atomic>
#include <cstddef>
#include <cstdint>

namespace tern::dpdk {

struct ExtRef {
  rte_mbuf_ext_shared_info shinfo;  // refcnt: 1 for the slot + 1 per attached mbuf
  std::atomic<bool> done{false};    // every mbuf attached to the frame was freed
  std::atomic<int> owners{2};       // the slot + the DPDK side
};

// A new ExtRef, DPDK refcount 1 (the slot's).
ExtRef* ext_ref_new();
// The slot lets go of its DPDK reference (once, when the frame is acknowledged or abandoned).
void ext_ref_release(ExtRef* r);
// The slot forgets the ExtRef (after ext_ref_release); deletes it if DPDK is done too.
void ext_ref_forget(ExtRef* r);
inline bool ext_ref_done(const ExtRef* r) { return r->done.load(std::memory_order_acquire); }

// A two-mbuf segment: `hdr_len` header bytes copied into the first, `len` payload bytes at
// `payload` attached to the second (not copied). nullptr when the pool is empty.
rte_mbuf* ext_segment(rte_mempool* pool, const uint8_t* hdr, size_t hdr_len,
                      const uint8_t* payload, uint16_t len, ExtRef* r);
// True when `m` is such a chain (its second mbuf is attached to external memory).
inline bool is_ext_segment(const rte_mbuf* m) {
  return m->nb_segs == 2 && RTE_MBUF_HAS_EXTBUF(m->next);
}

}  // namespace tern::dpdk
