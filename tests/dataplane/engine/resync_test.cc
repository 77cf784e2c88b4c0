// The resync of postcopy recovery: the destination's received bitmap decides exactly which host
// pages the source sends again, and a bitmap of the wrong size is refused.
#include "dataplane/engine/resync.h"

#include <gtest/gtest.h>

namespace tern::engine {
namespace {

TEST(Resync, DirtyBecomesExactlyWhatIsMissing) {
  AtomicBitmap received(130), dirty(130);
  for (size_t i : {0u, 1u, 63u, 64u, 100u, 129u}) received.set(i);
  dirty.set(64);  // dirty at the source but received: not sent again
  const std::vector<uint8_t> wire = encode_received(received);
  EXPECT_EQ(wire.size(), 24u);  // three u64 words
  Result<uint64_t> missing = apply_received(wire.data(), wire.size(), dirty);
  ASSERT_TRUE(missing.is_ok()) << missing.status().to_string();
  EXPECT_EQ(*missing, 124u);
  for (size_t i = 0; i < 130; ++i) EXPECT_EQ(dirty.test(i), !received.test(i)) << i;
}

TEST(Resync, WrongSizeIsAProtocolError) {
  AtomicBitmap received(64), dirty(65);
  const std::vector<uint8_t> wire = encode_received(received);
  Result<uint64_t> r = apply_received(wire.data(), wire.size(), dirty);
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kProtocol);
  EXPECT_NE(r.status().message().find("65 host pages"), std::string::npos);
}

TEST(Resync, TokenRoundTripsAndRefusesOtherSizes) {
  Result<uint64_t> t = decode_token(encode_token(0x1122334455667788ull));
  ASSERT_TRUE(t.is_ok());
  EXPECT_EQ(*t, 0x1122334455667788ull);
  EXPECT_FALSE(decode_token(std::vector<uint8_t>(7)).is_ok());
}

}  // namespace
}  // namespace tern::engine
