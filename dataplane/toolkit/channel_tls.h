// Transport toolkit: x509 on transports without a byte stream (rdma, dpdk, loopback). A TLS 1.3
// handshake (OpenSSL over memory buffers; the credentials and checks of tcp's TLS: the CA, a
// client certificate, tls-hostname, tls-authz) travels in kTlsHandshake frames on every
// channel, right after its hello. It only authenticates: no TLS record carries frames. Each
// side then takes the channel's key K from the TLS exporter (RFC 8446 7.5), bound to the
// channel's hello, mixed with the pre-shared key when there is one, and runs the pre-shared
// key handshake (channel_auth.h) with it: session keys, sealed control frames and markers,
// and page tags follow as with a pre-shared key alone, keyed by secrets only the two
// certified peers know. docs/security.md, "x509 on rdma and dpdk".
//
// Threads: control path only (the transport's connect()/accept() caller). Allocates.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "dataplane/peer_key.h"
#include "dataplane/tls_credentials.h"
#include "dataplane/toolkit/hello.h"

namespace tern::detail {
class TlsStream;
}

namespace tern::toolkit {

// The exporter label of the channel key.
inline constexpr char kChannelKeyLabel[] = "EXPORTER-tern-channel-key";

// One channel's TLS handshake over its frames.
class FrameTls {
 public:
  // Destination side (the server pair, a client certificate demanded).
  static Result<std::unique_ptr<FrameTls>> server(std::shared_ptr<const TlsChannelConfig> config,
                                                  const HelloPayload& hello);
  // Source side: the destination's certificate must name config.hostname, else `host`.
  static Result<std::unique_ptr<FrameTls>> client(std::shared_ptr<const TlsChannelConfig> config,
                                                  const std::string& host,
                                                  const HelloPayload& hello);
  ~FrameTls();

  // One look at `ch`, never waits: false while the handshake goes on; true once it is done,
  // the peer passed every check and every byte of ours is posted. kDenied when a check failed
  // (the alert, if any, is posted best-effort: drop the channel), kProtocol for a frame that
  // is not a handshake frame. Reads no frame past the handshake's last one.
  Result<bool> poll(RawChannel& ch);
  // After poll() said true: the channel's key, HMAC-SHA256(psk, "tern-tls+psk-v1" | exporter)
  // with a pre-shared key, else the exporter itself (32 bytes; context: the hello).
  Result<PeerKey> channel_key(const PeerKey* psk) const;
  bool waiting_to_send() const { return !unsent_.empty(); }

 private:
  FrameTls(std::unique_ptr<detail::TlsStream> tls, const HelloPayload& hello);
  bool post_output(RawChannel& ch);  // false: the channel failed

  std::unique_ptr<detail::TlsStream> tls_;
  HelloPayload hello_;
  std::vector<uint8_t> unsent_;  // TLS output not posted yet (the channel had no room)
  bool done_ = false;
};

// The source's side on every channel (hellos[i] was sent on *channels[i]), all at once, until
// `deadline`; then each channel's key (FrameTls::channel_key with `psk`, may be nullptr).
// kDenied names the refused certificate; kTimeout says the destination did not answer.
Result<std::vector<PeerKey>> tls_handshake_channels(
    const std::vector<RawChannel*>& channels, const std::vector<HelloPayload>& hellos,
    std::shared_ptr<const TlsChannelConfig> config, const std::string& host,
    const PeerKey* psk, Clock::time_point deadline);

// What encryption() says for such a transport (query-migrate's channel-encryption).
inline constexpr char kFrameTlsEncryption[] =
    "control channel only: AES-256-GCM, keys from a TLS 1.3 x509 handshake; page data in clear";

}  // namespace tern::toolkit
