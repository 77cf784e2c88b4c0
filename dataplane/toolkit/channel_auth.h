// Transport toolkit: the channel handshake, mutual authentication with a pre-shared key. It
// runs on every channel of every transport right after the hello, before the channel is handed
// to the engine (so before any layout, page or ack on it is used):
//   source -> destination   kAuthOffer      nonce_s (fresh, random)
//   destination -> source   kAuthChallenge  nonce_d (fresh, random), HMAC(K, "D" | T)
//   source -> destination   kAuthProof      HMAC(K, "S" | T)
// where T = "tern-auth-v1" | hello (channel index, count, session id) | nonce_s | nonce_d.
// Each side proves it knows K over nonces the other side just chose, bound to this channel's
// role and session: a replayed hello or proof, a forged one, or one reflected back fails.
// A channel that passed carries its session keys (RawChannel::set_keys, toolkit/session_keys.h).
// The destination answers only after the offer, the source sends its proof only after checking
// the destination's, so a fake destination learns nothing and moves no source on.
//
// Threads: control path only (the transport's connect()/accept() caller). Allocates.
#pragma once

#include <memory>
#include <vector>

#include "dataplane/peer_key.h"
#include "dataplane/toolkit/hello.h"

namespace tern::toolkit {

// HMAC-SHA256(key, role | "tern-auth-v1" | hello | nonce_s | nonce_d) into mac[32]: the proof
// of side `role` ('S' source, 'D' destination); nonces are 32 bytes. Public for tests that
// play a peer by hand.
void handshake_mac(const PeerKey& key, char role, const HelloPayload& hello,
                   const uint8_t* nonce_s, const uint8_t* nonce_d, uint8_t* mac);

// The destination's side of one channel's handshake, after its hello was read.
class AuthResponder {
 public:
  AuthResponder(std::shared_ptr<const PeerKey> key, const HelloPayload& hello)
      : key_(std::move(key)), hello_(hello) {}
  // One look at `ch`, never waits: false while the handshake goes on, true once the source
  // proved it knows the key; a kDenied/kProtocol error (the channel must be dropped) otherwise.
  Result<bool> poll(RawChannel& ch);

 private:
  std::shared_ptr<const PeerKey> key_;
  HelloPayload hello_;
  bool challenged_ = false;
  AuthPayload offer_{}, challenge_{};
};

// The source's side: runs the handshake on every channel (hellos[i] was sent on *channels[i]),
// all at once, until `deadline`. kDenied when the destination cannot prove it knows the key.
[[nodiscard]] Status authenticate_channels(const std::vector<RawChannel*>& channels,
                                           const std::vector<HelloPayload>& hellos,
                                           const PeerKey& key, Clock::time_point deadline);
// The same with a key per channel (keys[i] for *channels[i]: x509, channel_tls.h).
[[nodiscard]] Status authenticate_channels(const std::vector<RawChannel*>& channels,
                                           const std::vector<HelloPayload>& hellos,
                                           const std::vector<const PeerKey*>& keys,
                                           Clock::time_point deadline);

}  // namespace tern::toolkit
