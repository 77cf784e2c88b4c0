// The DPDK transport's link format, below tern's wire frames (docs/dpdk.md): every Ethernet
// frame carries one segment. A data segment holds the tern FrameHeader of the frame it belongs
// to and one fragment of that frame's payload; ack and probe segments hold only the header.
// Plain C++ (no DPDK): the reliability logic and its tests use it without an EAL.
#pragma once

#include <cstddef>
#include <cstdint>
#include <cstring>

#include "dataplane/wire.h"

namespace tern::dpdk {

inline constexpr uint16_t kEtherType = 0x88B5;  // IEEE local experimental
inline constexpr size_t kEtherHeaderBytes = 14;
inline constexpr uint16_t kSegMagic = 0x7e5d;

enum class SegKind : uint8_t {
  kData = 1,   // seq, frag_off, frag_len; followed by FrameHeader + fragment
  kAck = 2,    // ack, sack, wnd_end: the receiver's state of the peer's stream
  kFin = 3,    // seq: the sender's channel closed after every earlier seq
  kProbe = 4,  // "answer with an ack" (a sender window-blocked with no ack in an RTO)
};

enum SegFlag : uint8_t {
  // kData: the fragment is in `sum` (the headers always are).
  kSegPayloadSummed = 1,
  // Any kind: its sender wants the payload of the data segments it receives summed (a link that
  // may corrupt them, or corruption injected there); senders sum until told otherwise.
  kSegWantSums = 2,
};

#pragma pack(push, 1)
struct SegHeader {
  uint16_t magic;     // kSegMagic
  uint8_t kind;       // SegKind
  uint8_t flags;      // SegFlag bits
  uint32_t queue;     // queue pair (= channel slot) the segment belongs to
  uint32_t seq;       // kData, kFin
  uint32_t ack;       // kAck: every seq before this one was received
  uint32_t wnd_end;   // kAck: the receiver buffers seq < wnd_end
  uint32_t frag_off;  // kData: offset of the fragment in the frame's payload
  uint32_t frag_len;  // kData: fragment bytes after the FrameHeader
  uint32_t reserved1;
  uint64_t sack;      // kAck: bit i set = seq ack+1+i received
  uint64_t sum;       // checksum of the segment with this field zero (see segment_sum)
};
#pragma pack(pop)
static_assert(sizeof(SegHeader) == 48);

// Bytes of a data segment before its fragment (after the Ethernet header).
inline constexpr size_t kDataHeaderBytes = sizeof(SegHeader) + sizeof(FrameHeader);

// Sequence comparison with wrap-around (RFC 1982 style).
inline bool seq_lt(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) < 0; }
inline bool seq_le(uint32_t a, uint32_t b) { return static_cast<int32_t>(a - b) <= 0; }

// Checksum: a 64-bit sum of little-endian 8-byte words (tail zero-padded) plus the length. It
// catches every single-bit error and any burst shorter than 64 bits; it is cheap enough to run
// fused with the copy that moves the fragment (copy_sum), so a page is read once.
// The four 64-bit lanes (a0..a3) kept as two 16-byte vectors, (a0, a1) and (a2, a3): SSE2 adds
// on every x86-64 instead of scalar ones, in registers (a 32-byte vector type without AVX is
// spilled to the stack). GCC vector extension; the same sum as word by word.
using SumPair = uint64_t __attribute__((vector_size(16)));

inline SumPair load_pair(const uint8_t* p) {
  SumPair v;
  std::memcpy(&v, p, 16);
  return v;
}

inline uint64_t fold_lanes(SumPair v01, SumPair v23, uint64_t a0, uint64_t a1, uint64_t n,
                           uint64_t acc) {
  a0 += v01[0];
  a1 += v01[1];
  const uint64_t a2 = v23[0], a3 = v23[1];
  return acc + a0 + (a1 << 1 | a1 >> 63) + (a2 << 2 | a2 >> 62) + (a3 << 3 | a3 >> 61) + n;
}

// sum_bytes / copy_sum body: `copy` says whether the words also go to dst.
template <bool kCopy>
inline uint64_t sum_words(uint8_t* dst, const uint8_t* src, size_t n, uint64_t acc) {
  SumPair x01 = {0, 0}, x23 = {0, 0}, y01 = {0, 0}, y23 = {0, 0};
  size_t i = 0;
  for (; i + 64 <= n; i += 64) {
    const SumPair w0 = load_pair(src + i), w1 = load_pair(src + i + 16),
                  w2 = load_pair(src + i + 32), w3 = load_pair(src + i + 48);
    if constexpr (kCopy) {
      std::memcpy(dst + i, &w0, 16);
      std::memcpy(dst + i + 16, &w1, 16);
      std::memcpy(dst + i + 32, &w2, 16);
      std::memcpy(dst + i + 48, &w3, 16);
    }
    x01 += w0;
    x23 += w1;
    y01 += w2;
    y23 += w3;
  }
  for (; i + 32 <= n; i += 32) {
    const SumPair w0 = load_pair(src + i), w1 = load_pair(src + i + 16);
    if constexpr (kCopy) {
      std::memcpy(dst + i, &w0, 16);
      std::memcpy(dst + i + 16, &w1, 16);
    }
    x01 += w0;
    x23 += w1;
  }
  uint64_t a0 = 0, a1 = 0;
  for (; i + 8 <= n; i += 8) {
    uint64_t w;
    std::memcpy(&w, src + i, 8);
    if constexpr (kCopy) std::memcpy(dst + i, &w, 8);
    a0 += w;
  }
  if (i < n) {
    uint64_t w = 0;
    std::memcpy(&w, src + i, n - i);
    if constexpr (kCopy) std::memcpy(dst + i, src + i, n - i);
    a1 += w;
  }
  return fold_lanes(x01 + y01, x23 + y23, a0, a1, n, acc);
}

inline uint64_t sum_bytes(const uint8_t* p, size_t n, uint64_t acc = 0) {
  return sum_words<false>(nullptr, p, n, acc);
}

// memcpy(dst, src, n) and sum_bytes(src, n, acc) in one pass.
inline uint64_t copy_sum(uint8_t* dst, const uint8_t* src, size_t n, uint64_t acc = 0) {
  return sum_words<true>(dst, src, n, acc);
}

// `rest` of a data segment for segment_sum: its FrameHeader, then its fragment when the
// header's flags say the fragment is summed (kSegPayloadSummed).
inline uint64_t data_rest_sum(const SegHeader& h, const uint8_t* frame_header,
                              const uint8_t* fragment, size_t len) {
  const uint64_t sum = sum_bytes(frame_header, sizeof(FrameHeader));
  return (h.flags & kSegPayloadSummed) ? sum_bytes(fragment, len, sum) : sum;
}

// Checksum of a segment: its header (sum field taken as zero) then `rest` (FrameHeader and
// fragment, or nothing). `rest_sum` is sum_bytes/copy_sum of rest, computed by the caller.
inline uint64_t segment_sum(const SegHeader& h, uint64_t rest_sum) {
  SegHeader c = h;
  c.sum = 0;
  return sum_bytes(reinterpret_cast<const uint8_t*>(&c), sizeof(c), rest_sum);
}

}  // namespace tern::dpdk
