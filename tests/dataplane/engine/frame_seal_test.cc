// Sealed control frames (engine/frame_seal.h) and the session keys they use
// (toolkit/session_keys.h): a sealed message opens once, in order, with the peer's key only;
// any flipped bit, a replay, a reordering, a dropped frame or a frame reflected back is refused
// with "control frame failed authentication".
#include "dataplane/engine/frame_seal.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <string>

#include "dataplane/toolkit/session_keys.h"
#include "tests/dataplane/test_peer_key.h"

namespace tern::engine {
namespace {

using testing_support::test_key;

struct Sealed {
  FrameHeader outer;
  std::vector<uint8_t> bytes;
};

struct Pair {
  ChannelKeys src, dst;
};

const HelloPayload kHello{0, 4, 0x1234};

Pair derive(char key_fill, const HelloPayload& hello = kHello, uint8_t nonce_fill = 1) {
  uint8_t ns[32], nd[32];
  std::fill(ns, ns + 32, nonce_fill);
  std::fill(nd, nd + 32, static_cast<uint8_t>(nonce_fill + 1));
  auto key = test_key(key_fill);
  auto s = toolkit::derive_channel_keys(*key, 'S', hello, ns, nd);
  auto d = toolkit::derive_channel_keys(*key, 'D', hello, ns, nd);
  EXPECT_TRUE(s.is_ok() && d.is_ok());
  return {*s, *d};
}

Sealed seal(FrameSealer& sealer, ControlType type, uint32_t round, const std::string& text) {
  Sealed out;
  const auto inner = make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(text.size()),
                                 static_cast<uint32_t>(type), round, 0);
  EXPECT_TRUE(sealer.seal(inner, reinterpret_cast<const uint8_t*>(text.data()), text.size(),
                          &out.outer, &out.bytes)
                  .is_ok());
  return out;
}

Result<FrameHeader> open(FrameOpener& opener, const Sealed& s, std::vector<uint8_t>* payload) {
  return opener.open(s.outer, s.bytes.data(), s.bytes.size(), payload);
}

void expect_refused(const Result<FrameHeader>& r) {
  ASSERT_FALSE(r.is_ok());
  EXPECT_EQ(r.status().code(), Code::kDenied);
  EXPECT_NE(r.status().message().find("control frame failed authentication"), std::string::npos)
      << r.status().message();
}

TEST(SessionKeys, EachDirectionHasItsOwnKeyAndBothSidesAgree) {
  Pair p = derive('k');
  EXPECT_EQ(0, std::memcmp(p.src.send, p.dst.recv, kSessionKeyBytes));
  EXPECT_EQ(0, std::memcmp(p.dst.send, p.src.recv, kSessionKeyBytes));
  EXPECT_NE(0, std::memcmp(p.src.send, p.src.recv, kSessionKeyBytes));
  // Another key, channel, session or pair of nonces: other keys.
  HelloPayload other_channel = kHello;
  other_channel.channel_index = 1;
  HelloPayload other_session = kHello;
  other_session.session_id = 0x1235;
  for (const Pair& q : {derive('w'), derive('k', other_channel), derive('k', other_session),
                        derive('k', kHello, 7)})
    EXPECT_NE(0, std::memcmp(p.src.send, q.src.send, kSessionKeyBytes));
}

TEST(FrameSeal, MessagesOpenInOrderAndHideTheirContent) {
  Pair p = derive('k');
  FrameSealer sealer(p.src.send);
  FrameOpener opener(p.dst.recv);
  for (uint32_t r = 0; r < 3; ++r) {
    Sealed s = seal(sealer, ControlType::kRoundAck, r, "secret layout " + std::to_string(r));
    EXPECT_EQ(s.outer.flags, static_cast<uint32_t>(ControlType::kSealed));
    EXPECT_EQ(s.outer.round, 0u);
    EXPECT_EQ(std::string(s.bytes.begin(), s.bytes.end()).find("secret"), std::string::npos);
    std::vector<uint8_t> payload;
    auto inner = open(opener, s, &payload);
    ASSERT_TRUE(inner.is_ok()) << inner.status().to_string();
    EXPECT_EQ(inner->flags, static_cast<uint32_t>(ControlType::kRoundAck));
    EXPECT_EQ(inner->round, r);
    EXPECT_EQ(std::string(payload.begin(), payload.end()), "secret layout " + std::to_string(r));
  }
  EXPECT_EQ(opener.opened(), 3u);
}

TEST(FrameSeal, EveryFlippedByteOfHeaderOrPayloadIsRefused) {
  Pair p = derive('k');
  FrameSealer sealer(p.src.send);
  Sealed s = seal(sealer, ControlType::kLayout, 0, "layout");
  for (size_t i = 0; i < s.bytes.size(); ++i) {
    FrameOpener opener(p.dst.recv);
    Sealed t = s;
    t.bytes[i] ^= 0x01;
    std::vector<uint8_t> payload;
    expect_refused(open(opener, t, &payload));
    EXPECT_EQ(opener.opened(), 0u);
  }
  for (size_t i = 0; i < sizeof(FrameHeader); ++i) {
    FrameOpener opener(p.dst.recv);
    Sealed t = s;
    reinterpret_cast<uint8_t*>(&t.outer)[i] ^= 0x01;
    std::vector<uint8_t> payload;
    expect_refused(open(opener, t, &payload));
  }
}

TEST(FrameSeal, ReplayedReorderedDroppedOrReflectedFramesAreRefused) {
  Pair p = derive('k');
  FrameSealer sealer(p.src.send);
  Sealed a = seal(sealer, ControlType::kRoundAck, 1, "");
  Sealed b = seal(sealer, ControlType::kRoundAck, 2, "");
  std::vector<uint8_t> payload;
  {
    FrameOpener opener(p.dst.recv);  // replay
    ASSERT_TRUE(open(opener, a, &payload).is_ok());
    expect_refused(open(opener, a, &payload));
  }
  {
    FrameOpener opener(p.dst.recv);  // reorder, or the first one dropped
    expect_refused(open(opener, b, &payload));
  }
  {
    FrameOpener opener(p.src.recv);  // reflected back to its sender
    expect_refused(open(opener, a, &payload));
  }
  {
    FrameOpener opener(derive('w').dst.recv);  // another key
    expect_refused(open(opener, a, &payload));
  }
  {
    FrameOpener opener(p.dst.recv);  // a plain frame where sealed ones are due
    FrameHeader plain = make_header(FrameType::kControl, 0, 0, 0,
                                    static_cast<uint32_t>(ControlType::kRoundAck), 1, 0);
    expect_refused(opener.open(plain, nullptr, 0, &payload));
  }
}

TEST(FrameSeal, AFrameNeverPostedGivesItsNumberToTheNext) {
  Pair p = derive('k');
  FrameSealer sealer(p.src.send);
  FrameOpener opener(p.dst.recv);
  (void)seal(sealer, ControlType::kKeepalive, 0, "");  // its post was refused
  sealer.unseal_last();
  std::vector<uint8_t> payload;
  auto inner = open(opener, seal(sealer, ControlType::kRoundAck, 4, ""), &payload);
  ASSERT_TRUE(inner.is_ok()) << inner.status().to_string();
  EXPECT_EQ(inner->round, 4u);
}

}  // namespace
}  // namespace tern::engine
