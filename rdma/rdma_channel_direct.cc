// RdmaChannel's direct placement (precopy without postcopy armed; see rdma_channel.h and
// detail/grants.h): the sender's grant import, direct WRITEs and kPlaced batches, the
// receiver's grants and placed-frame checks, and the process-wide counters.
#include <atomic>
#include <cstring>

#include "rdma/rdma_channel.h"
#include "rdma/rdma_transport.h"

namespace tern::rdma {

using detail::SlotKind;

namespace {
constexpr uint32_t kHeaderBytes = sizeof(FrameHeader);
std::atomic<uint64_t> g_grants{0}, g_placed{0};  // process-wide (rdma_direct_counters)
}  // namespace

void RdmaChannel::import_grants() {
  if (!(peer_.features & detail::kFeatureGrants) || !memory_) return;
  const volatile detail::GrantEntry* t = conn_->grant_table();
  while (grants_in_ < detail::kMaxGrants && t[grants_in_].seq == grants_in_ + 1) {
    std::atomic_thread_fence(std::memory_order_acquire);
    const volatile detail::GrantEntry& e = t[grants_in_];
    detail::GrantEntry g;
    g.addr = e.addr;
    g.offset = e.offset;
    g.length = e.length;
    g.rkey = e.rkey;
    g.block = e.block;
    g.seq = e.seq;
    peer_grants_.add(g);
    ++grants_in_;
  }
}

bool RdmaChannel::direct_write(const Slot& s, SendWr* w) {
  if (!s.page || s.length == 0 || peer_grants_.size() == 0) return false;
  const detail::GrantEntry* g = peer_grants_.find(s.hdr.block, s.hdr.offset, s.length);
  uint32_t lkey = 0;
  if (g == nullptr || !memory_->lookup(s.payload, s.length, &lkey)) return false;
  *w = SendWr{};
  w->opcode = Opcode::kWrite;
  w->sge[0] = {reinterpret_cast<uint64_t>(s.payload), s.length, lkey};
  w->num_sge = 1;
  w->remote_addr = g->addr + (s.hdr.offset - g->offset);
  w->rkey = g->rkey;
  return true;
}

void RdmaChannel::close_batch(Batch& b, SendWr* wrs, uint32_t& n) {
  const uint32_t bytes = b.count * kHeaderBytes;
  SendWr& w = wrs[n++];
  w = SendWr{};
  w.opcode = Opcode::kSendImm;
  w.imm = detail::encode_imm(b.slot, SlotKind::kPlaced);
  w.sge[0] = {reinterpret_cast<uint64_t>(conn_->tx_area() + uint64_t{b.slot} * kShape.slot_bytes),
              bytes, conn_->tx_lkey()};
  w.num_sge = 1;
  w.inline_data = bytes <= conn_->max_inline();
  b.count = 0;
}

bool RdmaChannel::direct_allowed() const {
  return memory_ && memory_->remote_writable() && landing_ != nullptr &&
         landing_->accepts_remote_writes() && (peer_.features & detail::kFeatureGrants);
}

void RdmaChannel::maybe_grant(const FrameHeader& h, uint8_t* dst) {
  if (!direct_allowed() || my_grants_.size() >= detail::kMaxGrants || !sq_room(1)) return;
  if (my_grants_.find(h.block, h.offset, h.length) != nullptr) return;
  MemoryMap::Registered r;
  if (!memory_->lookup(dst, h.length, &r)) return;  // not announced, or registration failed
  // The grant is what the landing lets the peer write of the registered chunk (its frame's
  // block); a chunk is kChunk (64 MiB) at most, so the length fits the entry.
  const WritableSpan span = landing_->remote_writable(h, r.base, r.length);
  if (span.length == 0 || span.length > UINT32_MAX) return;
  const auto i = static_cast<uint32_t>(my_grants_.size());
  detail::GrantEntry& g = conn_->grant_source()[i];
  g.addr = reinterpret_cast<uint64_t>(span.base);
  g.offset = span.offset;
  g.length = static_cast<uint32_t>(span.length);
  g.rkey = r.rkey;
  g.block = h.block;
  g.seq = i + 1;
  SendWr w;
  w.opcode = Opcode::kWrite;
  w.sge[0] = {reinterpret_cast<uint64_t>(&g), sizeof(g), conn_->credit_lkey()};
  w.num_sge = 1;
  w.inline_data = conn_->max_inline() >= sizeof(g);
  w.remote_addr = peer_.credit_addr + detail::kGrantTableOffset + uint64_t{i} * sizeof(g);
  w.rkey = peer_.credit_rkey;
  // Counted before it is posted, so that whoever sees the grant arrive also sees it counted.
  my_grants_.add(g);
  g_grants.fetch_add(1, std::memory_order_relaxed);
  post_chain(&w, 1);  // a failure fails the channel
}

bool RdmaChannel::deliver_placed(uint32_t slot, const uint8_t* base, RxFrame* out, size_t& n,
                                 size_t max) {
  auto refuse = [&](const std::string& why) {  // cold: strings are built only on failure
    fail(Status(Code::kProtocol, "channel " + std::to_string(index_) + ": " + why));
    return false;
  };
  const uint32_t bytes = rx_len_[slot];
  const uint32_t count = bytes / kHeaderBytes;
  if (count == 0 || count > detail::kMaxPlacedBatch || bytes % kHeaderBytes != 0)
    return refuse("placed-frame notification of " + std::to_string(bytes) + " bytes");
  if (!direct_allowed() || my_grants_.size() == 0)
    return refuse("frames placed directly, but this side granted no memory for direct "
                  "placement (staged landing, postcopy, or no grant)");
  const size_t first = n;
  while (placed_pos_ < count && n < max) {
    FrameHeader h;
    std::memcpy(&h, base + uint64_t{placed_pos_} * kHeaderBytes, kHeaderBytes);
    if (!accept_header(h)) return false;
    if (static_cast<FrameType>(h.type) != FrameType::kPage)
      return refuse("placed-frame notification names a frame of type " + std::to_string(h.type));
    uint8_t* dst = land_page(h);  // inside guest RAM (the landing), or the channel fails
    if (dst == nullptr) return false;
    if (my_grants_.find(h.block, h.offset, h.length) == nullptr)
      return refuse("page frame for block " + std::to_string(h.block) + " offset " +
                    std::to_string(h.offset) + " placed outside the memory granted to the peer");
    out[n++] = {h, dst};
    ++placed_pos_;
  }
  placed_received_ += n - first;
  g_placed.fetch_add(n - first, std::memory_order_relaxed);
  if (placed_pos_ == count) {
    placed_pos_ = 0;
    ++rx_consumed_;
  }
  return true;
}

}  // namespace tern::rdma

namespace tern {
RdmaDirectCounters rdma_direct_counters() {
  return {rdma::g_grants.load(std::memory_order_relaxed),
          rdma::g_placed.load(std::memory_order_relaxed)};
}
}  // namespace tern
