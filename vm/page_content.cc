#include "vm/page_content.h"

#include <atomic>
#include <cstring>

namespace tern {
namespace {

uint64_t splitmix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9;
  x = (x ^ (x >> 27)) * 0x94d049bb133111eb;
  return x ^ (x >> 31);
}

// Payload generator: xorshift64 seeded from (index, version); never all-zero state.
struct PayloadGen {
  uint64_t s;
  PayloadGen(uint64_t index, uint64_t version)
      : s(splitmix64(index * 0x9e3779b97f4a7c15 ^ splitmix64(version)) | 1) {}
  uint64_t next() {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    return s;
  }
};

// Checksum over the header's identity and the payload words, four independent lanes so the
// multiply latency does not serialize the loop.
struct Checksum {
  uint64_t lane[4];
  Checksum(uint64_t index, uint64_t version)
      : lane{index, version, 0x243f6a8885a308d3, 0x13198a2e03707344} {}
  void add(uint32_t i, uint64_t w) { lane[i & 3] = (lane[i & 3] ^ w) * 0x100000001b3; }
  uint64_t value() const {
    return splitmix64(lane[0] ^ splitmix64(lane[1] ^ splitmix64(lane[2] ^ splitmix64(lane[3]))));
  }
};

void store(uint64_t* w, uint64_t v) {
  std::atomic_ref<uint64_t>(*w).store(v, std::memory_order_relaxed);
}

uint64_t load(const uint64_t* w) {
  return std::atomic_ref<uint64_t>(*const_cast<uint64_t*>(w)).load(std::memory_order_relaxed);
}

}  // namespace

void fill_page(uint8_t* page, uint64_t index, uint64_t version) {
  auto* w = reinterpret_cast<uint64_t*>(page);
  uint64_t* payload = w + sizeof(PageHeader) / 8;
  PayloadGen gen(index, version);
  Checksum sum(index, version);
  for (uint32_t i = 0; i < kPayloadWords; ++i) {
    uint64_t v = gen.next();
    sum.add(i, v);
    store(&payload[i], v);
  }
  store(&w[0], index);
  store(&w[1], version);
  store(&w[2], sum.value());
  store(&w[3], kPageMagic);
}

bool check_page(const uint8_t* page, uint64_t index, uint64_t version, std::string* why) {
  const auto* w = reinterpret_cast<const uint64_t*>(page);
  auto fail = [&](std::string msg) {
    if (why) *why = "page " + std::to_string(index) + ": " + msg;
    return false;
  };
  // Plain loads: nobody writes a page while it is checked (the owning vCPU checks it, or the
  // guest is paused), so the compiler may vectorize.
  uint64_t h_index = w[0], h_version = w[1], h_sum = w[2], h_magic = w[3];
  if (version == 0) {
    uint64_t any = 0;
    for (uint32_t i = 0; i < kPageWords; ++i) any |= w[i];
    if (any == 0) return true;
    if (h_magic == kPageMagic)
      return fail("version " + std::to_string(h_version) + " in page, 0 in table");
    return fail("never written (version 0 in table) but not all zero");
  }
  if (h_magic != kPageMagic) {
    bool zero = h_index == 0 && h_version == 0 && h_sum == 0 && h_magic == 0;
    return fail(zero ? "no header (page never arrived?), version " + std::to_string(version) +
                           " in table"
                     : "header magic is wrong (garbage), version " + std::to_string(version) +
                           " in table");
  }
  if (h_index != index)
    return fail("header says page " + std::to_string(h_index) + " (misplaced page)");
  if (h_version != version)
    return fail("version " + std::to_string(h_version) + " in page, " + std::to_string(version) +
                " in table");
  const uint64_t* payload = w + sizeof(PageHeader) / 8;
  PayloadGen gen(index, version);
  Checksum sum(index, version);
  uint32_t first_bad = kPayloadWords;
  for (uint32_t i = 0; i < kPayloadWords; ++i) {
    uint64_t v = payload[i];
    sum.add(i, v);
    if (v != gen.next() && first_bad == kPayloadWords) first_bad = i;
  }
  if (sum.value() != h_sum || first_bad != kPayloadWords) {
    std::string at = first_bad == kPayloadWords
                         ? std::string("header checksum field")
                         : "byte " + std::to_string(sizeof(PageHeader) + first_bad * 8);
    return fail("checksum mismatch at version " + std::to_string(version) + " (content corrupt at " +
                at + ")");
  }
  return true;
}

void copy_page_relaxed(uint8_t* dst, const uint8_t* src) {
  auto* d = reinterpret_cast<uint64_t*>(dst);
  const auto* s = reinterpret_cast<const uint64_t*>(src);
  for (uint32_t i = 0; i < kPageWords; ++i) d[i] = load(&s[i]);
}

}  // namespace tern
