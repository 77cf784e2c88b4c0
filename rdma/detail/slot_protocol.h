// tern's slot protocol over one RC queue pair, as plain arithmetic (no verbs), so that it can be
// unit-tested anywhere (tests/rdma/detail/slot_protocol_test.cc).
//
// Each side of a connection owns a receive ring of `slots` slots of `slot_bytes` bytes and keeps
// one receive posted per slot. A frame travels as one or more fragments, one slot each, in ring
// order: the first fragment holds the 32-byte FrameHeader then up to `cap` payload bytes; each
// continuation holds the next `cap` payload bytes at the same place (after the header room).
// Fragments go as RDMA WRITE WITH IMM into the slot (payload straight from source memory) or,
// when small, as an inline SEND WITH IMM (which lands in the slot's posted receive). Either way
// the immediate names the slot and the fragment kind, and one receive completion reports it.
// The receiver returns slots by RDMA-writing its consumed-slot count into the sender's credit
// word; the sender never has more than `slots - 1` unreturned slots, keeping the last one for
// the goodbye fragment a closing channel sends.
#pragma once

#include <cstdint>

namespace tern::rdma::detail {

inline constexpr uint32_t kHeaderRoom = 32;  // sizeof(FrameHeader)

// kPlaced: the slot holds only FrameHeaders (byte length / 32 of them) of page frames whose
// payloads were already RDMA-written to their place in a grant (detail/grants.h).
enum class SlotKind : uint32_t { kFirst = 1, kContinue = 2, kGoodbye = 3, kPlaced = 4 };

inline uint32_t encode_imm(uint32_t slot, SlotKind kind) {
  return (static_cast<uint32_t>(kind) << 24) | (slot & 0xffffffu);
}
inline uint32_t imm_slot(uint32_t imm) { return imm & 0xffffffu; }
inline SlotKind imm_kind(uint32_t imm) { return static_cast<SlotKind>(imm >> 24); }

// Payload bytes in the fragment that starts `offset` bytes into a `length`-byte payload.
inline uint32_t fragment_bytes(uint32_t length, uint32_t offset, uint32_t cap) {
  const uint32_t left = length - offset;
  return left < cap ? left : cap;
}
// Slots a frame with a `length`-byte payload occupies (a frame without payload takes one).
inline uint32_t slots_for(uint32_t length, uint32_t cap) {
  return length == 0 ? 1 : (length + cap - 1) / cap;
}

// The sender's view of the peer's ring: which slot is next and how many it may fill.
class CreditWindow {
 public:
  CreditWindow(uint32_t slots, uint32_t reserve) : slots_(slots), reserve_(reserve) {}
  // Slots that may be filled now, given the peer's consumed-slot count.
  uint64_t available(uint64_t peer_consumed) const {
    const uint64_t limit = peer_consumed + slots_ - reserve_;
    return limit > used_ ? limit - used_ : 0;
  }
  // Whether the reserved slot (goodbye) is free.
  bool reserve_free(uint64_t peer_consumed) const { return peer_consumed + slots_ > used_; }
  // Claims the next slot; returns its index.
  uint32_t take() { return static_cast<uint32_t>(used_++ % slots_); }
  uint64_t used() const { return used_; }

 private:
  uint32_t slots_;
  uint32_t reserve_;
  uint64_t used_ = 0;
};

}  // namespace tern::rdma::detail
