// Loss, reordering, duplication and corruption injected in a channel's receive path, for tests
// of the reliability layer (design section 7). Seeded, so a failing run can be replayed.
// Plain C++ over opaque packet handles; the channel supplies how to free, duplicate (take one
// more reference) and corrupt a packet.
//
// Threads: one per channel, used by its owner thread only.
#pragma once

#include <cstddef>
#include <cstdint>

#include "dpdk/detail/reliable.h"

namespace tern::dpdk {

struct FaultConfig {
  double loss = 0;     // probability a received segment is dropped
  double reorder = 0;  // probability it is held back and delivered after later ones
  double dup = 0;      // probability it is delivered twice
  double corrupt = 0;  // probability a byte of it is flipped (the checksum must catch it)
  uint64_t seed = 1;
  bool any() const { return loss > 0 || reorder > 0 || dup > 0 || corrupt > 0; }
};

class FaultInjector {
 public:
  static constexpr size_t kMaxHeld = 8;

  FaultInjector(const FaultConfig& c, uint64_t stream) : c_(c), s_(c.seed * 0x9E3779B97F4A7C15ull ^ (stream + 1)) {}

  // Filters a burst: in[0..n) -> out (capacity >= 2 * n + kMaxHeld). Packets held back by an
  // earlier call come out after this call's packets. Returns the count written to out.
  template <typename Free, typename Dup, typename Corrupt>
  size_t apply(Packet* in, size_t n, Packet* out, Free&& free_fn, Dup&& dup_fn,
               Corrupt&& corrupt_fn) {
    size_t k = 0;
    Packet release[kMaxHeld];
    size_t nrelease = held_;
    for (size_t i = 0; i < held_; ++i) release[i] = held_pkts_[i];
    held_ = 0;
    for (size_t i = 0; i < n; ++i) {
      Packet p = in[i];
      if (chance(c_.loss)) {
        free_fn(p);
        ++dropped_;
        continue;
      }
      if (chance(c_.corrupt)) corrupt_fn(p, next());
      if (chance(c_.reorder) && held_ < kMaxHeld) {
        held_pkts_[held_++] = p;
        continue;
      }
      out[k++] = p;
      if (chance(c_.dup)) out[k++] = dup_fn(p);
    }
    for (size_t i = 0; i < nrelease; ++i) out[k++] = release[i];
    return k;
  }

  template <typename Free>
  void clear(Free&& free_fn) {
    for (size_t i = 0; i < held_; ++i) free_fn(held_pkts_[i]);
    held_ = 0;
  }
  bool holding() const { return held_ != 0; }
  uint64_t dropped() const { return dropped_; }

 private:
  uint64_t next() {  // splitmix64
    uint64_t z = (s_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  bool chance(double p) { return p > 0 && (next() >> 11) * 0x1.0p-53 < p; }

  FaultConfig c_;
  uint64_t s_;
  Packet held_pkts_[kMaxHeld];
  size_t held_ = 0;
  uint64_t dropped_ = 0;
};

}  // namespace tern::dpdk
