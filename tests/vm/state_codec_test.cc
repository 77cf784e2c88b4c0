// The framed guest-state blob (vm/state_codec.h): a round trip, and every kind of bad blob a
// peer could send giving a kProtocol error that names the problem, never an over-read.
#include "vm/state_codec.h"

#include <gtest/gtest.h>

namespace tern {
namespace {

constexpr StateFormat kFormat{0x5453455443444f43, 3, "test state"};

WorkloadSpec two_vcpus() {
  auto spec = parse_workload("vcpus=2,ram=8M,seed=7");
  EXPECT_TRUE(spec.is_ok());
  return *spec;
}

struct Field {
  uint32_t a;
  uint16_t b;
  uint8_t c[6];
};

std::vector<uint8_t> good_blob() {
  StateWriter w(kFormat, 2, two_vcpus());
  w.put<uint64_t>(0x1122334455667788);
  w.put(Field{7, 8, {1, 2, 3, 4, 5, 6}});
  w.put<uint32_t>(42);
  return std::move(w).finish();
}

// A blob with the given header fields and body, and a correct checksum: hostile, yet intact.
std::vector<uint8_t> forged(uint64_t magic, uint32_t version, uint32_t vcpus, uint32_t spec_len,
                            const std::string& spec, size_t body_bytes = 0) {
  std::vector<uint8_t> b;
  auto put = [&](const auto& v) {
    const auto* p = reinterpret_cast<const uint8_t*>(&v);
    b.insert(b.end(), p, p + sizeof(v));
  };
  put(magic);
  put(version);
  put(vcpus);
  put(spec_len);
  b.insert(b.end(), spec.begin(), spec.end());
  b.resize(b.size() + body_bytes, 0x5a);
  put(state_checksum(b));
  return b;
}

std::string open_error(const std::vector<uint8_t>& blob) {
  auto r = StateReader::open(kFormat, blob);
  if (r) return "";
  EXPECT_EQ(r.status().code(), Code::kProtocol) << r.status().to_string();
  EXPECT_EQ(r.status().message().rfind("test state: ", 0), 0u) << r.status().message();
  return r.status().message();
}

TEST(StateCodec, RoundTrip) {
  std::vector<uint8_t> blob = good_blob();
  auto r = StateReader::open(kFormat, blob);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->vcpus(), 2u);
  EXPECT_EQ(r->spec(), two_vcpus());
  EXPECT_EQ(r->left(), 8 + sizeof(Field) + 4);
  EXPECT_FALSE(r->finish()) << "fields not read yet are trailing bytes";
  uint64_t x = 0;
  Field f{};
  uint32_t y = 0;
  ASSERT_TRUE(r->get(x));
  ASSERT_TRUE(r->get(f));
  ASSERT_TRUE(r->get(y));
  EXPECT_EQ(x, 0x1122334455667788u);
  EXPECT_EQ(f.a, 7u);
  EXPECT_EQ(f.b, 8u);
  EXPECT_EQ(f.c[5], 6u);
  EXPECT_EQ(y, 42u);
  EXPECT_TRUE(r->finish());
  uint8_t past = 0x77;
  EXPECT_FALSE(r->get(past)) << "nothing is read past the last field";
  EXPECT_EQ(past, 0x77u);
}

TEST(StateCodec, ShortFieldIsNotRead) {
  StateWriter w(kFormat, 2, two_vcpus());
  w.put<uint32_t>(5);
  std::vector<uint8_t> blob = std::move(w).finish();
  auto r = StateReader::open(kFormat, blob);
  ASSERT_TRUE(r.is_ok());
  uint64_t wide = 9;
  EXPECT_FALSE(r->get(wide));
  EXPECT_EQ(wide, 9u);
  EXPECT_EQ(r->left(), 4u) << "a failed get consumes nothing";
  EXPECT_NE(r->finish().message().find("4 trailing bytes"), std::string::npos);
  EXPECT_EQ(r->error("vCPU 1 out of range").message(), "test state: vCPU 1 out of range");
}

TEST(StateCodec, EmptyAndShortBlobs) {
  EXPECT_NE(open_error({}).find("empty"), std::string::npos);
  EXPECT_NE(open_error(std::vector<uint8_t>(27, 0)).find("27 bytes is too short"),
            std::string::npos);
}

TEST(StateCodec, EveryTruncationIsAnError) {
  const std::vector<uint8_t> blob = good_blob();
  for (size_t n = 0; n < blob.size(); ++n) {
    std::vector<uint8_t> cut(blob.begin(), blob.begin() + static_cast<ptrdiff_t>(n));
    EXPECT_NE(open_error(cut), "") << "prefix of " << n << " bytes";
  }
}

TEST(StateCodec, EveryFlippedBitIsAnError) {
  const std::vector<uint8_t> blob = good_blob();
  for (size_t i = 0; i < blob.size(); ++i)
    for (int bit = 0; bit < 8; ++bit) {
      std::vector<uint8_t> bad = blob;
      bad[i] ^= static_cast<uint8_t>(1u << bit);
      EXPECT_NE(open_error(bad), "") << "byte " << i << " bit " << bit;
    }
}

TEST(StateCodec, WrongMagicVersionOrChecksum) {
  EXPECT_NE(open_error(std::vector<uint8_t>(100, 0xab)).find("bad magic (not a test state)"),
            std::string::npos);
  const std::string spec = two_vcpus().to_string();
  const auto len = static_cast<uint32_t>(spec.size());
  EXPECT_NE(open_error(forged(kFormat.magic, 4, 2, len, spec))
                .find("version 4, this build reads version 3"),
            std::string::npos);
  std::vector<uint8_t> corrupt = good_blob();
  corrupt[30] ^= 1;
  EXPECT_NE(open_error(corrupt).find("checksum mismatch"), std::string::npos);
  std::vector<uint8_t> bad_sum = good_blob();
  bad_sum.back() ^= 0x80;
  EXPECT_NE(open_error(bad_sum).find("checksum mismatch"), std::string::npos);
}

TEST(StateCodec, HostileHeaderWithAValidChecksum) {
  const std::string spec = two_vcpus().to_string();
  const auto len = static_cast<uint32_t>(spec.size());
  EXPECT_EQ(open_error(forged(kFormat.magic, kFormat.version, 2, len, spec)), "");
  // A spec length past the end, by one byte and by almost 4 GiB.
  EXPECT_NE(open_error(forged(kFormat.magic, kFormat.version, 2, len + 1, spec))
                .find("truncated workload spec"),
            std::string::npos);
  EXPECT_NE(open_error(forged(kFormat.magic, kFormat.version, 2, 0xffffffff, spec))
                .find("truncated workload spec"),
            std::string::npos);
  EXPECT_NE(open_error(forged(kFormat.magic, kFormat.version, 2, 9, "vcpus=abc"))
                .find("bad workload spec"),
            std::string::npos);
  EXPECT_NE(open_error(forged(kFormat.magic, kFormat.version, 5, len, spec))
                .find("spec has 2 vCPUs, state has 5"),
            std::string::npos);
  // A spec length shorter than the spec leaves its tail as (unparsed) field bytes.
  const std::vector<uint8_t> short_spec =
      forged(kFormat.magic, kFormat.version, 1, 7, "vcpus=1ram");
  auto r = StateReader::open(kFormat, short_spec);
  ASSERT_TRUE(r.is_ok()) << r.status().to_string();
  EXPECT_EQ(r->left(), 3u);
}

TEST(StateCodec, OtherFormatsBlobIsRefused) {
  constexpr StateFormat kOther{0x1111111111111111, 3, "other state"};
  StateWriter w(kOther, 2, two_vcpus());
  std::vector<uint8_t> blob = std::move(w).finish();
  EXPECT_NE(open_error(blob).find("bad magic"), std::string::npos);
}

}  // namespace
}  // namespace tern
