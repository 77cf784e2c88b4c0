#include "dataplane/toolkit/channel_auth.h"

#include "dataplane/toolkit/session_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <poll.h>

#include <algorithm>
#include <cstring>
#include <string>

namespace tern::toolkit {
namespace {

constexpr char kLabel[] = "tern-auth-v1";

}  // namespace

void handshake_mac(const PeerKey& key, char role, const HelloPayload& hello, const uint8_t* nonce_s,
           const uint8_t* nonce_d, uint8_t* mac) {
  uint8_t msg[1 + sizeof(kLabel) + sizeof(HelloPayload) + 64];
  size_t n = 0;
  msg[n++] = static_cast<uint8_t>(role);
  std::memcpy(msg + n, kLabel, sizeof(kLabel));
  n += sizeof(kLabel);
  std::memcpy(msg + n, &hello, sizeof(hello));
  n += sizeof(hello);
  std::memcpy(msg + n, nonce_s, 32);
  std::memcpy(msg + n + 32, nonce_d, 32);
  n += 64;
  unsigned int len = 32;
  HMAC(EVP_sha256(), key.bytes.data(), static_cast<int>(key.bytes.size()), msg, n, mac, &len);
}

namespace {

bool fresh_nonce(uint8_t* nonce) { return RAND_bytes(nonce, 32) == 1; }

// Queues one handshake frame; the transport's own frame, hidden from poll_tx.
bool send_auth(RawChannel& ch, uint32_t index, ControlType type, const AuthPayload& p) {
  TxFrame f{make_header(FrameType::kControl, 0, 0, sizeof(p), static_cast<uint32_t>(type), 0,
                        index),
            &p};
  if (ch.post(&f, 1) != 1) return false;
  ch.hide_tx_completions(1);
  return ch.flush();
}

// One look for a handshake frame of `type`: false when none yet; an error for anything else.
Result<bool> receive_auth(RawChannel& ch, ControlType type, AuthPayload* out) {
  RxFrame f;
  if (ch.poll_rx(&f, 1) == 0) {
    if (!ch.error().is_ok()) return ch.error();
    return false;
  }
  if (static_cast<FrameType>(f.hdr.type) == FrameType::kControl &&
      f.hdr.flags == static_cast<uint32_t>(ControlType::kTlsHandshake))
    return Status(Code::kDenied,
                  "the peer ended the TLS handshake with an alert after it looked at this "
                  "side's certificate: refused (a certificate from another CA, or a subject not "
                  "in its tls-authz?)");
  if (static_cast<FrameType>(f.hdr.type) != FrameType::kControl ||
      f.hdr.flags != static_cast<uint32_t>(type) || f.hdr.length != sizeof(AuthPayload) ||
      f.data == nullptr)
    return Status(Code::kDenied, "sent frame type " + std::to_string(f.hdr.type) + " (" +
                                     std::to_string(f.hdr.flags) + ") where the handshake " +
                                     "expects step " + std::to_string(static_cast<int>(type)) +
                                     " (a peer without a key, or an older tern?)");
  std::memcpy(out, f.data, sizeof(*out));
  return true;
}

}  // namespace

Result<bool> AuthResponder::poll(RawChannel& ch) {
  if (!ch.flush()) return ch.error();  // the challenge may still be on its way
  if (!challenged_) {
    auto got = receive_auth(ch, ControlType::kAuthOffer, &offer_);
    if (!got || !*got) return got;
    if (!fresh_nonce(challenge_.nonce))
      return Status(Code::kInternal, "no random bytes for a nonce");
    handshake_mac(*key_, 'D', hello_, offer_.nonce, challenge_.nonce, challenge_.mac);
    if (!send_auth(ch, hello_.channel_index, ControlType::kAuthChallenge, challenge_))
      return ch.error().is_ok() ? Status(Code::kIo, "cannot send the challenge") : ch.error();
    challenged_ = true;
  }
  AuthPayload proof;
  auto got = receive_auth(ch, ControlType::kAuthProof, &proof);
  if (!got || !*got) return got;
  uint8_t want[32];
  handshake_mac(*key_, 'S', hello_, offer_.nonce, challenge_.nonce, want);
  if (CRYPTO_memcmp(want, proof.mac, sizeof(want)) != 0)
    return Status(Code::kDenied, "the source's proof does not match the key " + key_->origin +
                                     " (a wrong key, or a replayed or forged handshake)");
  auto keys = derive_channel_keys(*key_, 'D', hello_, offer_.nonce, challenge_.nonce);
  if (!keys) return keys.status();
  ch.set_keys(*keys);
  return true;
}

Status authenticate_channels(const std::vector<RawChannel*>& channels,
                             const std::vector<HelloPayload>& hellos, const PeerKey& key,
                             Clock::time_point deadline) {
  return authenticate_channels(channels, hellos,
                               std::vector<const PeerKey*>(channels.size(), &key), deadline);
}

Status authenticate_channels(const std::vector<RawChannel*>& channels,
                             const std::vector<HelloPayload>& hellos,
                             const std::vector<const PeerKey*>& keys, Clock::time_point deadline) {
  const size_t n = channels.size();
  std::vector<AuthPayload> offers(n);
  std::vector<int> step(n, 0);  // 0: offered, 1: proof queued, 2: proof handed to the peer
  for (size_t i = 0; i < n; ++i) {
    if (!fresh_nonce(offers[i].nonce)) return Status(Code::kInternal, "no random bytes");
    std::memset(offers[i].mac, 0, sizeof(offers[i].mac));
    if (!send_auth(*channels[i], hellos[i].channel_index, ControlType::kAuthOffer, offers[i]))
      return Status(Code::kIo, "channel " + std::to_string(i) + ": cannot send the handshake: " +
                                   channels[i]->error().message());
  }
  size_t done = 0;
  while (done < n) {
    bool progress = false, nap_short = false;
    std::vector<pollfd> fds;
    for (size_t i = 0; i < n; ++i) {
      RawChannel& ch = *channels[i];
      if (step[i] == 2) continue;
      if (!ch.flush()) return ch.error();
      if (step[i] == 1) {
        if (ch.tx_pending() == 0) {
          step[i] = 2;
          ++done;
          progress = true;
        }
        nap_short = true;
        continue;
      }
      AuthPayload challenge;
      auto got = receive_auth(ch, ControlType::kAuthChallenge, &challenge);
      if (!got)
        return Status(got.status().code(), "channel " + std::to_string(i) +
                                               ": the destination's handshake: " +
                                               got.status().message());
      if (!*got) {
        if (ch.wait_fd() >= 0 && ch.wakes_on_receive())
          fds.push_back({ch.wait_fd(), POLLIN, 0});
        else
          nap_short = true;
        continue;
      }
      uint8_t want[32];
      handshake_mac(*keys[i], 'D', hellos[i], offers[i].nonce, challenge.nonce, want);
      if (CRYPTO_memcmp(want, challenge.mac, sizeof(want)) != 0)
        return Status(Code::kDenied, "channel " + std::to_string(i) +
                                         ": the destination cannot prove it knows the key " +
                                         keys[i]->origin + ": not migrating to it");
      auto session = derive_channel_keys(*keys[i], 'S', hellos[i], offers[i].nonce,
                                         challenge.nonce);
      if (!session) return session.status();
      ch.set_keys(*session);
      AuthPayload proof{};
      handshake_mac(*keys[i], 'S', hellos[i], offers[i].nonce, challenge.nonce, proof.mac);
      if (!send_auth(ch, hellos[i].channel_index, ControlType::kAuthProof, proof)) return ch.error();
      step[i] = 1;
      progress = true;
    }
    if (done == n) break;
    if (Clock::now() >= deadline)
      return Status(Code::kTimeout,
                    "the destination did not answer the channel handshake in time (does it "
                    "have the key? a destination started with --insecure does not answer)");
    // Sleep on the channels that can wake us; a short nap covers the others.
    if (!progress) wait_for_channels(fds, nap_short, deadline);
  }
  return Status::ok();
}

}  // namespace tern::toolkit
