// The attach protocol's codec (attach/protocol.h) and socket I/O (attach/channel.h): every
// payload round-trips; malformed headers, short or oversized payloads, bad counts, strings with
// NULs and wrong fd counts are refused with a message that names what is wrong.
#include <gtest/gtest.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cstring>
#include <memory>
#include <thread>
#include <sys/stat.h>

#include "attach/channel.h"
#include "attach/protocol.h"

namespace tern::attach {
namespace {

Bytes header_bytes(uint32_t magic, uint16_t version, uint16_t type, uint32_t length) {
  Bytes b(kHeaderSize);
  std::memcpy(b.data(), &magic, 4);
  std::memcpy(b.data() + 4, &version, 2);
  std::memcpy(b.data() + 6, &type, 2);
  std::memcpy(b.data() + 8, &length, 4);
  return b;
}

TEST(AttachProtocol, HeaderRoundTrips) {
  uint8_t b[kHeaderSize];
  encode_header({kVersion, MsgType::kDirtySync, 8, 42}, b);
  auto h = decode_header(View(b, kHeaderSize));
  ASSERT_TRUE(h.is_ok()) << h.status().to_string();
  EXPECT_EQ(h->type, MsgType::kDirtySync);
  EXPECT_EQ(h->length, 8u);
  EXPECT_EQ(h->id, 42u);
}

TEST(AttachProtocol, MalformedHeadersAreRefusedWithTheReason) {
  auto msg = [](const Bytes& b) { return decode_header(b).status().message(); };
  EXPECT_NE(msg(header_bytes(0x1234, 1, 1, 0)).find("magic"), std::string::npos);
  EXPECT_NE(msg(header_bytes(kMagic, 2, 1, 0)).find("version 2"), std::string::npos);
  EXPECT_NE(msg(header_bytes(kMagic, 1, 99, 0)).find("type 99"), std::string::npos);
  EXPECT_NE(msg(header_bytes(kMagic, 1, 1, kMaxPayload + 1)).find("limit"), std::string::npos);
  EXPECT_FALSE(decode_header(View(header_bytes(kMagic, 1, 1, 0)).first(15)).is_ok());
}

TEST(AttachProtocol, PayloadsRoundTrip) {
  Hello h{1, 1, Role::kDestination, kCapDirtyLog | kCapPostcopy, 4, "my vmm"};
  auto h2 = decode_hello(encode(h));
  ASSERT_TRUE(h2.is_ok());
  EXPECT_EQ(h2->role, Role::kDestination);
  EXPECT_EQ(h2->capabilities, h.capabilities);
  EXPECT_EQ(h2->vcpus, 4u);
  EXPECT_EQ(h2->description, "my vmm");

  Region r{1ull << 32, 2u << 20, 4096, 0x7f0000000000, 4096u, "ram"};
  auto r2 = decode_region(encode(r));
  ASSERT_TRUE(r2.is_ok());
  EXPECT_EQ(r2->guest_phys_addr, r.guest_phys_addr);
  EXPECT_EQ(r2->size, r.size);
  EXPECT_EQ(r2->fd_offset, r.fd_offset);
  EXPECT_EQ(r2->vmm_addr, r.vmm_addr);
  EXPECT_EQ(r2->name, "ram");

  std::vector<FreeRange> f = {{0, 4096, 8192}, {1, 0, 4096}};
  auto f2 = decode_free_ranges(encode(f));
  ASSERT_TRUE(f2.is_ok());
  ASSERT_EQ(f2->size(), 2u);
  EXPECT_EQ((*f2)[1].region, 1u);
  EXPECT_EQ((*f2)[0].length, 8192u);

  VerifyResult v{10, 1, 3, 0, "page 7 stale"};
  auto v2 = decode_verify(encode(v));
  ASSERT_TRUE(v2.is_ok());
  EXPECT_EQ(v2->mismatches, 1u);
  EXPECT_EQ(v2->first_mismatch, "page 7 stale");

  auto p = decode_penalty(encode(Penalty{3, 250}));
  ASSERT_TRUE(p.is_ok());
  EXPECT_EQ(p->vcpu, 3u);
  EXPECT_EQ(p->microseconds, 250u);

  ErrorBody e = decode_error(encode(ErrorBody{Code::kUnavailable, "no throttle"}));
  EXPECT_EQ(e.code, Code::kUnavailable);
  EXPECT_EQ(e.message, "no throttle");
}

TEST(AttachProtocol, BadPayloadsAreRefused) {
  Bytes hello = encode(Hello{1, 1, Role::kSource, 0, 1, ""});
  EXPECT_FALSE(decode_hello(View(hello).first(23)).is_ok());
  hello[4] = 3;  // role 3
  EXPECT_NE(decode_hello(hello).status().message().find("role"), std::string::npos);
  Bytes region = encode(Region{0, 4096, 0, 0, 4096u, "a"});
  region.back() = 0;  // a NUL in the name
  EXPECT_NE(decode_region(region).status().message().find("NUL"), std::string::npos);
  Bytes unnamed = encode(Region{0, 4096, 0, 0, 4096u, ""});
  EXPECT_FALSE(decode_region(unnamed).is_ok());
  Bytes ranges = encode(std::vector<FreeRange>{{0, 0, 4096}});
  ranges[0] = 200;  // 200 ranges announced, 1 present
  EXPECT_NE(decode_free_ranges(ranges).status().message().find("200 ranges"), std::string::npos);
  EXPECT_FALSE(decode_ready(encode_u32_pair(8, 0)).is_ok());  // unknown fd flag
  EXPECT_EQ(decode_error(Bytes{1}).code, Code::kInternal);
  EXPECT_EQ(decode_error(encode_u32_pair(999, 0)).code, Code::kInternal);
}

TEST(AttachProtocol, BitmapGeometryPutsEachRegionOnAWord) {
  EXPECT_EQ(bitmap_words(4096), 1u);
  EXPECT_EQ(bitmap_words(64 * 4096), 1u);
  EXPECT_EQ(bitmap_words(65 * 4096), 2u);
  EXPECT_EQ(bitmap_bytes({4096, 65 * 4096}), 24u);
}

TEST(AttachProtocol, CapabilityNames) {
  EXPECT_EQ(capability_names(kCapThrottle), "throttle");
  EXPECT_EQ(capability_names(kCapDirtyLog | kCapState), "dirty-log,state");
  EXPECT_EQ(capability_names(0), "none");
}

class ChannelPair : public ::testing::Test {
 protected:
  void SetUp() override {
    int sv[2];
    ASSERT_EQ(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
    a_ = std::make_unique<Channel>(UniqueFd(sv[0]));
    b_ = std::make_unique<Channel>(UniqueFd(sv[1]));
  }
  std::unique_ptr<Channel> a_, b_;
};

TEST_F(ChannelPair, MessagesCarryTheirFds) {
  int memfd = memfd_create("region", MFD_CLOEXEC);
  ASSERT_GE(memfd, 0);
  ASSERT_EQ(ftruncate(memfd, 8192), 0);
  ASSERT_TRUE(a_->send(MsgType::kRegion, 7, encode(Region{0, 8192, 0, 0, 4096u, "r"}),
                       {memfd})
                  .is_ok());
  close(memfd);
  auto m = b_->receive(std::chrono::seconds(5));
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->type, MsgType::kRegion);
  EXPECT_EQ(m->id, 7u);
  ASSERT_EQ(m->fds.size(), 1u);
  struct stat st {};
  ASSERT_EQ(fstat(m->fds[0].get(), &st), 0);
  EXPECT_EQ(st.st_size, 8192);
}

TEST_F(ChannelPair, AMissingFdIsRefused) {
  ASSERT_TRUE(a_->send(MsgType::kRegion, 1, encode(Region{0, 4096, 0, 0, 4096u, "r"}))
                  .is_ok());
  auto m = b_->receive(std::chrono::seconds(5));
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("needs 1"), std::string::npos);
}

TEST_F(ChannelPair, AnUnexpectedFdIsRefusedAndClosed) {
  int memfd = memfd_create("extra", MFD_CLOEXEC);
  ASSERT_TRUE(a_->send(MsgType::kPause, 1, {}, {memfd}).is_ok());
  close(memfd);
  auto m = b_->receive(std::chrono::seconds(5));
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("carried 1"), std::string::npos);
}

TEST_F(ChannelPair, GarbageClosesTheConnection) {
  Bytes junk = header_bytes(0xdeadbeef, 1, 1, 0);
  ASSERT_EQ(write(a_->fd(), junk.data(), junk.size()), static_cast<ssize_t>(junk.size()));
  auto m = b_->receive(std::chrono::seconds(5));
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), Code::kProtocol);
  EXPECT_FALSE(b_->is_open());
}

TEST_F(ChannelPair, APeerThatClosesIsReported) {
  a_->close();
  auto m = b_->receive(std::chrono::seconds(5));
  ASSERT_FALSE(m.is_ok());
  EXPECT_NE(m.status().message().find("closed"), std::string::npos);
}

TEST_F(ChannelPair, ATruncatedPayloadTimesOut) {
  Bytes h = header_bytes(kMagic, 1, static_cast<uint16_t>(MsgType::kLoadState), 100);
  ASSERT_EQ(write(a_->fd(), h.data(), h.size()), static_cast<ssize_t>(h.size()));
  auto m = b_->receive(std::chrono::milliseconds(100));
  ASSERT_FALSE(m.is_ok());
  EXPECT_EQ(m.status().code(), Code::kTimeout);
}

TEST_F(ChannelPair, LargePayloadsArriveWhole) {
  Bytes big(3u << 20);
  for (size_t i = 0; i < big.size(); ++i) big[i] = static_cast<uint8_t>(i * 7);
  std::thread sender([&] { EXPECT_TRUE(a_->send(MsgType::kLoadState, 9, big).is_ok()); });
  auto m = b_->receive(std::chrono::seconds(10));
  sender.join();
  ASSERT_TRUE(m.is_ok()) << m.status().to_string();
  EXPECT_EQ(m->payload, big);
}

}  // namespace
}  // namespace tern::attach
