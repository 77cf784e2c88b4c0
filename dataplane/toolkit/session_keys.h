// Transport toolkit: the session keys of one authenticated channel. Once a channel's handshake
// passed, both sides derive, with HKDF-SHA256 (RFC 5869):
//   PRK   = HKDF-Extract(salt = nonce_s | nonce_d, IKM = K)
//   K_s2d = HKDF-Expand(PRK, "tern-session-v1 s2d" | hello, 32)   source -> destination
//   K_d2s = HKDF-Expand(PRK, "tern-session-v1 d2s" | hello, 32)   destination -> source
// so keys are fresh per connection (both nonces), bound to the channel and session (the hello),
// and never the same for the two directions (a frame reflected back does not open).
//
// Threads: control path only. Allocates.
#pragma once

#include "dataplane/channel_keys.h"
#include "dataplane/peer_key.h"
#include "dataplane/status.h"
#include "dataplane/wire.h"

namespace tern::toolkit {

// The keys of side `role` ('S' source, 'D' destination): its send key is its direction's.
// kInternal only when libcrypto fails.
Result<ChannelKeys> derive_channel_keys(const PeerKey& key, char role, const HelloPayload& hello,
                                        const uint8_t* nonce_s, const uint8_t* nonce_d);

}  // namespace tern::toolkit
