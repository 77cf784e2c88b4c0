// The rdma slot protocol's arithmetic (immediates, fragments, credits): runs anywhere.
#include "rdma/detail/slot_protocol.h"

#include <gtest/gtest.h>

#include <utility>
#include <vector>

#include "rdma/detail/grants.h"
#include "rdma/memory_map.h"

namespace tern::rdma::detail {
namespace {

TEST(SlotProtocol, ImmediateNamesSlotAndKind) {
  for (uint32_t slot : {0u, 1u, 63u, 0xfffffu}) {
    for (SlotKind k : {SlotKind::kFirst, SlotKind::kContinue, SlotKind::kGoodbye,
                       SlotKind::kPlaced}) {
      const uint32_t imm = encode_imm(slot, k);
      EXPECT_EQ(imm_slot(imm), slot);
      EXPECT_EQ(imm_kind(imm), k);
    }
  }
}

TEST(SlotProtocol, FragmentsCoverThePayloadOnce) {
  const uint32_t cap = 64 << 10;
  for (uint32_t len : {0u, 1u, 4096u, cap - 1, cap, cap + 1, 2u << 20, (2u << 20) + 4096}) {
    uint32_t off = 0, slots = 0;
    do {
      const uint32_t piece = fragment_bytes(len, off, cap);
      EXPECT_LE(piece, cap);
      off += piece;
      ++slots;
    } while (off < len);
    EXPECT_EQ(off, len);
    EXPECT_EQ(slots, slots_for(len, cap)) << len;
  }
}

TEST(SlotProtocol, CreditWindowKeepsOneSlotForTheGoodbye) {
  CreditWindow w(4, 1);
  EXPECT_EQ(w.available(0), 3u);
  EXPECT_EQ(w.take(), 0u);
  EXPECT_EQ(w.take(), 1u);
  EXPECT_EQ(w.take(), 2u);
  EXPECT_EQ(w.available(0), 0u);
  EXPECT_TRUE(w.reserve_free(0));  // the goodbye still fits
  EXPECT_EQ(w.available(2), 2u);   // the peer consumed two
  EXPECT_EQ(w.take(), 3u);
  EXPECT_EQ(w.take(), 0u);         // wraps around the ring
  EXPECT_EQ(w.available(2), 0u);
  EXPECT_FALSE(w.reserve_free(1));
}

TEST(MemoryMap, RegistersChunksOnFirstUseOnly) {
  MemoryMap m;
  static uint8_t a[8192], b[4096];
  std::vector<std::pair<const void*, size_t>> calls;
  auto reg = [&](uint32_t key) {
    return [&calls, key](void* p, size_t n) -> Result<Region> {
      calls.emplace_back(p, n);
      return Region{static_cast<uint8_t*>(p), n, key, 0, nullptr};
    };
  };
  m.add(a, sizeof(a), reg(7));
  m.add(b, sizeof(b), reg(9));
  EXPECT_EQ(m.registered_chunks(), 0u);  // nothing pinned up front
  uint32_t key = 0;
  EXPECT_TRUE(m.lookup(a + 4096, 4096, &key));
  EXPECT_EQ(key, 7u);
  EXPECT_TRUE(m.lookup(a, 4096, &key));  // same chunk: no second registration
  EXPECT_EQ(calls.size(), 1u);
  EXPECT_TRUE(m.lookup(b, 4096, &key));
  EXPECT_EQ(key, 9u);
  EXPECT_EQ(m.registered_chunks(), 2u);
  EXPECT_FALSE(m.lookup(a + 4096, 8192, &key));  // runs past the end
  uint8_t other[16];
  EXPECT_FALSE(m.lookup(other, 16, &key));
}

TEST(MemoryMap, AFailedRegistrationMeansCopy) {
  MemoryMap m;
  static uint8_t a[4096];
  m.add(a, sizeof(a), [](void*, size_t) -> Result<Region> {
    return Status(Code::kIo, "no memory");
  });
  uint32_t key = 0;
  EXPECT_FALSE(m.lookup(a, 4096, &key));
  EXPECT_FALSE(m.lookup(a, 4096, &key));
}

TEST(MemoryMap, RemoteWritableOnlyWhenARangeWasAddedForRemoteWrite) {
  MemoryMap m;
  static uint8_t a[4096], b[4096];
  auto reg = [](void* p, size_t n) -> Result<Region> {
    return Region{static_cast<uint8_t*>(p), n, 5, 6, nullptr};
  };
  m.add(a, sizeof(a), reg);
  EXPECT_FALSE(m.remote_writable());
  m.add(b, sizeof(b), reg, /*remote_write=*/true);
  EXPECT_TRUE(m.remote_writable());
  MemoryMap::Registered r;
  ASSERT_TRUE(m.lookup(b + 64, 128, &r));
  EXPECT_EQ(r.base, b);
  EXPECT_EQ(r.length, sizeof(b));
  EXPECT_EQ(r.rkey, 6u);
}

TEST(Grants, FindHoldsOnlyWhatWasGranted) {
  constexpr uint64_t kChunk = 64u << 20;
  GrantTable t(kChunk);
  EXPECT_EQ(t.find(0, 0, 4096), nullptr);
  t.add({0x10000000, 0, kChunk, 7, 0, 1});
  t.add({0x90000000, kChunk, 4u << 20, 8, 0, 2});  // a short last chunk
  t.add({0x50000000, 0, kChunk, 9, 2, 3});         // block 2; block 1 has none
  const GrantEntry* g = t.find(0, kChunk - 4096, 4096);
  ASSERT_NE(g, nullptr);
  EXPECT_EQ(g->rkey, 7u);
  EXPECT_EQ(t.find(0, kChunk - 4096, 8192), nullptr);  // straddles two grants
  ASSERT_NE(t.find(0, kChunk + (2u << 20), 2u << 20), nullptr);
  EXPECT_EQ(t.find(0, kChunk + (2u << 20), 2u << 20)->rkey, 8u);
  EXPECT_EQ(t.find(0, kChunk + (4u << 20), 4096), nullptr);  // past the short chunk
  EXPECT_EQ(t.find(0, 10 * kChunk, 4096), nullptr);
  EXPECT_EQ(t.find(1, 0, 4096), nullptr);
  EXPECT_EQ(t.find(2, 4096, 4096)->rkey, 9u);
  EXPECT_EQ(t.find(3, 0, 4096), nullptr);
  EXPECT_EQ(t.find(0, 0, 0), nullptr);
  EXPECT_EQ(t.size(), 3u);
}

TEST(Grants, ControlRegionLayout) {
  EXPECT_GE(kGrantTableOffset, 16u);  // after the credit word and its source
  EXPECT_EQ(kGrantSourceOffset - kGrantTableOffset, kMaxGrants * sizeof(GrantEntry));
  EXPECT_LE(kMaxPlacedBatch * 32u, 64u << 10);  // a notification fits a slot
}

}  // namespace
}  // namespace tern::rdma::detail
