// Sealed control frames. On a channel with session keys (Channel::keys()) every control message
// travels as one kControl frame with flags = kSealed whose payload is
//   AES-256-GCM(key = this direction's session key, nonce = 0^4 | seq (u64 LE),
//                     aad = the outer header, plaintext = inner header | inner payload) | tag
// seq counts the frames of that direction on that channel from 0 and is never sent: a frame
// that was tampered with, replayed, reordered or dropped (the next one then carries the wrong
// seq) does not open. The outer header shows only the frame's length; the message type, round
// and payload are confidential. docs/wire-protocol.md, docs/security.md.
//
// Threads: one sealer and one opener per control link, used by its control thread only.
// Allocates (control path).
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/channel_keys.h"
#include "dataplane/status.h"
#include "dataplane/wire.h"

namespace tern::engine {

inline constexpr uint32_t kSealTagBytes = 16;
// Bytes a sealed frame adds to its message's payload: the inner header and the tag.
inline constexpr uint32_t kSealOverhead = sizeof(FrameHeader) + kSealTagBytes;
// The AES-GCM nonce of frame number `seq` of a direction: 4 zero bytes, then seq (u64 LE).
void seal_nonce(uint64_t seq, uint8_t nonce[12]);

class FrameSealer {
 public:
  explicit FrameSealer(const uint8_t* key);  // kSessionKeyBytes, copied
  // The next frame of this direction for the message `inner` (a kControl header whose length
  // is n; by value, so *outer may alias it) and its payload: the outer header into *outer, the
  // sealed payload into *sealed.
  // kInvalidArgument when the message is too large to seal.
  [[nodiscard]] Status seal(FrameHeader inner, const uint8_t* payload, size_t n,
                            FrameHeader* outer, std::vector<uint8_t>* sealed);
  // The last sealed frame was never handed to the channel (its post was refused) and is
  // discarded: the next seal takes its sequence number (no nonce is used twice on the wire).
  void unseal_last() { --seq_; }

 private:
  uint8_t key_[kSessionKeyBytes];
  uint64_t seq_ = 0;
};

class FrameOpener {
 public:
  explicit FrameOpener(const uint8_t* key);  // kSessionKeyBytes, copied
  // Opens the next frame of the peer's direction (outer header and its `n` payload bytes): the
  // inner header, its payload into *payload. kDenied ("control frame failed authentication:
  // ...") for anything that is not the next sealed frame of this direction, unchanged; the
  // sequence then does not advance (the caller fails the link).
  [[nodiscard]] Result<FrameHeader> open(const FrameHeader& outer, const uint8_t* data, size_t n,
                                         std::vector<uint8_t>* payload);
  uint64_t opened() const { return seq_; }

 private:
  uint8_t key_[kSessionKeyBytes];
  uint64_t seq_ = 0;
};

}  // namespace tern::engine
