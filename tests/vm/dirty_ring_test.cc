#include "vm/dirty_ring.h"

#include <gtest/gtest.h>

#include <thread>

namespace tern {
namespace {

TEST(DirtyRing, PushHarvestAndFull) {
  DirtyRing ring(16);
  EXPECT_EQ(ring.capacity(), 16u);
  for (uint64_t i = 0; i < 16; ++i) EXPECT_TRUE(ring.push(0, i));
  EXPECT_TRUE(ring.full());
  EXPECT_FALSE(ring.push(0, 99));
  std::vector<DirtyGfn> out;
  EXPECT_EQ(ring.harvest(out), 16u);
  ASSERT_EQ(out.size(), 16u);
  for (uint64_t i = 0; i < 16; ++i) {
    EXPECT_EQ(out[i].offset, i);
    EXPECT_EQ(out[i].flags, kDirtyGfnDirty);
  }
  EXPECT_EQ(ring.used(), 0u);
  EXPECT_TRUE(ring.push(1, 99));
  out.clear();
  EXPECT_EQ(ring.harvest(out), 1u);
  EXPECT_EQ(out[0].slot, 1u);
}

TEST(DirtyRing, ProducerStallsUntilHarvestAndNothingIsLost) {
  DirtyRing ring(16);
  constexpr uint64_t kEntries = 20000;
  std::thread producer([&] {
    for (uint64_t i = 0; i < kEntries; ++i)
      while (!ring.push(0, i)) ring.wait_not_full();
  });
  std::vector<DirtyGfn> out;
  while (out.size() < kEntries) {
    if (ring.harvest(out) == 0) std::this_thread::yield();
  }
  producer.join();
  for (uint64_t i = 0; i < kEntries; ++i) ASSERT_EQ(out[i].offset, i);
}

}  // namespace
}  // namespace tern
