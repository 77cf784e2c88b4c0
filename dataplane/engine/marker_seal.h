// Sealed markers on the data channels (urgent and bulk). The frames there that steer a
// migration travel sealed when the channel has session keys: round ends (bulk, source ->
// destination) and page requests (urgent, destination -> source); with page integrity also
// one tag per page frame (page_integrity.h). A marker is a sealed frame in the format of
// frame_seal.h whose inner message is a bare 32-byte header (no inner payload):
//   outer: kControl, flags = kSealed, length = kSealedMarkerBytes, channel = the channel,
//          block = kMarkerTagsNext for a page tag (its inner header is the next frame's), else 0
//   payload: AES-256-GCM(this direction's key, nonce = 0^4 | seq (u64 LE),
//                        aad = outer header | covered bytes, plaintext = inner header) | tag
// seq counts this direction's markers on that channel from 0 and is never sent, so a marker
// that was changed, replayed, reordered, dropped or reflected does not open. `covered` is
// empty for round ends and requests, the page's bytes for a page tag.
//
// Data tier: no allocation and no exceptions on seal/open (the refusal text is built only
// when the caller fails); one cipher context per object, created with it (the key schedule
// once, not per frame). Threads: one sealer / opener per channel direction, used by the worker
// that owns that direction of the channel.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>

#include "dataplane/engine/frame_seal.h"

typedef struct evp_cipher_ctx_st EVP_CIPHER_CTX;

namespace tern::engine {

inline constexpr uint32_t kSealedMarkerBytes = sizeof(FrameHeader) + kSealTagBytes;
// The outer `block` of a page tag: it opens only with the bytes of the page frame after it.
inline constexpr uint32_t kMarkerTagsNext = 1;

// Whether a marker's inner frame is a page tag's (a kPage or kZero header).
inline bool tags_page(const FrameHeader& inner) {
  const auto t = static_cast<FrameType>(inner.type);
  return t == FrameType::kPage || t == FrameType::kZero;
}

// Whether a received frame is a sealed frame (a marker, or a sealed control message).
inline bool is_sealed_frame(const FrameHeader& h) {
  return static_cast<FrameType>(h.type) == FrameType::kControl &&
         h.flags == static_cast<uint32_t>(ControlType::kSealed);
}

class MarkerSealer {
 public:
  explicit MarkerSealer(const uint8_t* key);  // kSessionKeyBytes
  ~MarkerSealer();
  MarkerSealer(const MarkerSealer&) = delete;
  MarkerSealer& operator=(const MarkerSealer&) = delete;
  // The next marker of this direction for `inner` (its channel field names the channel): the
  // outer header into *outer (by value: *outer may alias inner), kSealedMarkerBytes into out.
  // False only when libcrypto fails.
  [[nodiscard]] bool seal(FrameHeader inner, const uint8_t* covered, size_t covered_len,
                          FrameHeader* outer, uint8_t* out);

 private:
  EVP_CIPHER_CTX* ctx_;
  uint64_t seq_ = 0;
};

class MarkerOpener {
 public:
  enum class Refusal { kNone, kNotSealed, kBadLength, kDoesNotOpen, kBadInner };
  explicit MarkerOpener(const uint8_t* key);  // kSessionKeyBytes
  ~MarkerOpener();
  MarkerOpener(const MarkerOpener&) = delete;
  MarkerOpener& operator=(const MarkerOpener&) = delete;
  // Opens the peer's next marker (outer header, its payload `data`): *inner on kNone, and the
  // sequence advances. On a refusal it does not advance unless `skip_on_refusal` (a page tag
  // in precopy: page_integrity.h), so that later markers still open.
  [[nodiscard]] Refusal open(const FrameHeader& outer, const uint8_t* data,
                             const uint8_t* covered, size_t covered_len, FrameHeader* inner,
                             bool skip_on_refusal = false);
  uint64_t opened() const { return seq_; }
  // "<what> failed authentication: ..." for a refusal of the marker number `seq`, for the
  // error that fails the migration (allocates: off the data path's normal course).
  static std::string describe(const char* what, Refusal why, uint64_t seq, uint32_t channel);

 private:
  EVP_CIPHER_CTX* ctx_;
  uint64_t seq_ = 0;
};

}  // namespace tern::engine
