#include "dpdk/detail/tx_extbuf.h"

#include <rte_eal.h>

#include <cstring>

namespace tern::dpdk {
namespace {

void dpdk_done(void* /*addr*/, void* opaque) {
  auto* r = static_cast<ExtRef*>(opaque);
  r->done.store(true, std::memory_order_release);
  if (r->owners.fetch_sub(1, std::memory_order_acq_rel) == 1) delete r;
}

}  // namespace

ExtRef* ext_ref_new() {
  auto* r = new ExtRef;
  r->shinfo.free_cb = dpdk_done;
  r->shinfo.fcb_opaque = r;
  rte_mbuf_ext_refcnt_set(&r->shinfo, 1);
  return r;
}

void ext_ref_release(ExtRef* r) {
  if (rte_mbuf_ext_refcnt_update(&r->shinfo, -1) == 0) dpdk_done(nullptr, r);
}

void ext_ref_forget(ExtRef* r) {
  if (r->owners.fetch_sub(1, std::memory_order_acq_rel) == 1) delete r;
}

rte_mbuf* ext_segment(rte_mempool* pool, const uint8_t* hdr, size_t hdr_len,
                      const uint8_t* payload, uint16_t len, ExtRef* r) {
  rte_mbuf* h = rte_pktmbuf_alloc(pool);
  if (h == nullptr) return nullptr;
  rte_mbuf* p = rte_pktmbuf_alloc(pool);
  if (p == nullptr) {
    rte_pktmbuf_free(h);
    return nullptr;
  }
  std::memcpy(rte_pktmbuf_append(h, static_cast<uint16_t>(hdr_len)), hdr, hdr_len);
  // The PMDs this is used with (memif) copy with the CPU; a DMA-capable NIC would also need
  // the guest memory registered (rte_extmem_register + rte_dev_dma_map), which is not done.
  auto* addr = const_cast<uint8_t*>(payload);
  const rte_iova_t iova =
      rte_eal_iova_mode() == RTE_IOVA_VA ? reinterpret_cast<rte_iova_t>(addr) : RTE_BAD_IOVA;
  rte_mbuf_ext_refcnt_update(&r->shinfo, 1);
  rte_pktmbuf_attach_extbuf(p, addr, iova, len, &r->shinfo);
  p->data_off = 0;
  p->data_len = len;
  p->pkt_len = len;
  h->next = p;
  h->nb_segs = 2;
  h->pkt_len = static_cast<uint32_t>(hdr_len) + len;
  return h;
}

}  // namespace tern::dpdk
