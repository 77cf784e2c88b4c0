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

TEST(ResyncIntake, TakesEachBlockOnceThenTheAck) {
  MigrationBitmap dirty({kHugePageBytes, kTargetPageSize}, {8u << 20, 1u << 20});
  dirty.set_all();
  ResyncIntake intake(dirty);
  AtomicBitmap huge(4), small(256);
  huge.set(1);
  small.set(0), small.set(255);
  ASSERT_FALSE(*intake.take({ControlType::kReceivedBitmap, 0, encode_received(huge)}));
  // A second bitmap for the same block is refused (it would count its pages twice).
  auto twice = intake.take({ControlType::kReceivedBitmap, 0, encode_received(huge)});
  ASSERT_FALSE(twice.is_ok());
  EXPECT_NE(twice.status().message().find("twice"), std::string::npos);
  // The ack before every block's bitmap is refused too.
  EXPECT_FALSE(intake.take({ControlType::kResumeAck, 0, {}}).is_ok());
  ASSERT_FALSE(*intake.take({ControlType::kReceivedBitmap, 1, encode_received(small)}));
  auto done = intake.take({ControlType::kResumeAck, 0, {}});
  ASSERT_TRUE(done.is_ok() && *done);
  EXPECT_EQ(intake.missing(), 3u + 254u);
  EXPECT_EQ(dirty.dirty_host_pages(), intake.missing());
}

TEST(ResyncIntake, RefusesOtherMessagesAndBlocksOutOfRange) {
  MigrationBitmap dirty({kTargetPageSize}, {1u << 20});
  ResyncIntake intake(dirty);
  EXPECT_FALSE(intake.take({ControlType::kKeepalive, 0, {}}).is_ok());
  EXPECT_FALSE(intake.take({ControlType::kReceivedBitmap, 1, std::vector<uint8_t>(32)}).is_ok());
  auto refused = intake.take({ControlType::kError, 0, {'n', 'o'}});
  ASSERT_FALSE(refused.is_ok());
  EXPECT_NE(refused.status().message().find("refused the resume: no"), std::string::npos);
}

TEST(Resync, CheckResumeWantsTheTokenInAResume) {
  EXPECT_TRUE(check_resume({ControlType::kResume, 0, encode_token(7)}, 7).is_ok());
  EXPECT_FALSE(check_resume({ControlType::kResume, 0, encode_token(8)}, 7).is_ok());
  EXPECT_FALSE(check_resume({ControlType::kKeepalive, 0, encode_token(7)}, 7).is_ok());
  EXPECT_FALSE(check_resume({ControlType::kResume, 0, std::vector<uint8_t>(4)}, 7).is_ok());
}

}  // namespace
}  // namespace tern::engine
