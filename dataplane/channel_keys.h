// Per-channel session keys: after a channel passed the handshake (toolkit/channel_auth.h) each
// side holds one key for what it sends and one for what it receives, derived from the
// pre-shared key and that channel's handshake (toolkit/session_keys.h; docs/security.md). The
// engine seals control frames with them (engine/frame_seal.h).
//
// Threads: immutable once set on a channel (before the transport hands the channel out).
#pragma once

#include <cstddef>
#include <cstdint>

namespace tern {

inline constexpr size_t kSessionKeyBytes = 32;

struct ChannelKeys {
  uint8_t send[kSessionKeyBytes];  // seals what this side sends on the channel
  uint8_t recv[kSessionKeyBytes];  // opens what the peer sends on it
};

}  // namespace tern
