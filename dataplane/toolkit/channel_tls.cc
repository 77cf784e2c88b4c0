#include "dataplane/toolkit/channel_tls.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <poll.h>

#include <algorithm>
#include <cstring>

#include "dataplane/transport/detail/tls_stream.h"

namespace tern::toolkit {
namespace {

constexpr char kMixLabel[] = "tern-tls+psk-v1";

}  // namespace

FrameTls::FrameTls(std::unique_ptr<detail::TlsStream> tls, const HelloPayload& hello)
    : tls_(std::move(tls)), hello_(hello) {}

FrameTls::~FrameTls() = default;

Result<std::unique_ptr<FrameTls>> FrameTls::server(std::shared_ptr<const TlsChannelConfig> config,
                                                   const HelloPayload& hello) {
  auto tls = detail::TlsStream::server_in_memory(std::move(config));
  if (!tls) return tls.status();
  return std::unique_ptr<FrameTls>(new FrameTls(std::move(*tls), hello));
}

Result<std::unique_ptr<FrameTls>> FrameTls::client(std::shared_ptr<const TlsChannelConfig> config,
                                                   const std::string& host,
                                                   const HelloPayload& hello) {
  auto tls = detail::TlsStream::client_in_memory(std::move(config), host);
  if (!tls) return tls.status();
  return std::unique_ptr<FrameTls>(new FrameTls(std::move(*tls), hello));
}

bool FrameTls::post_output(RawChannel& ch) {
  uint8_t buf[kMaxHandshakePayload];
  while (true) {
    if (unsent_.empty()) {
      const size_t n = tls_->take_output(buf, sizeof(buf));
      if (n == 0) break;
      unsent_.assign(buf, buf + n);
    }
    TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(unsent_.size()),
                          static_cast<uint32_t>(ControlType::kTlsHandshake), 0,
                          hello_.channel_index),
              unsent_.data()};
    if (ch.post(&f, 1) != 1) break;  // no room: the next poll() tries again
    ch.hide_tx_completions(1);
    unsent_.clear();
  }
  return ch.flush();
}

Result<bool> FrameTls::poll(RawChannel& ch) {
  if (done_) return true;
  while (true) {
    auto shaken = tls_->handshake();
    if (!post_output(ch)) return ch.error();
    if (!shaken) return Status(shaken.status().code(), shaken.status().message());
    if (*shaken) {
      if (!unsent_.empty()) return false;
      done_ = true;
      return true;
    }
    RxFrame f;
    if (ch.poll_rx(&f, 1) == 0) {
      if (!ch.error().is_ok()) return ch.error();
      return false;
    }
    if (static_cast<FrameType>(f.hdr.type) != FrameType::kControl ||
        f.hdr.flags != static_cast<uint32_t>(ControlType::kTlsHandshake) || f.data == nullptr ||
        f.hdr.length == 0)
      return Status(Code::kDenied,
                    "sent frame type " + std::to_string(f.hdr.type) + " (" +
                        std::to_string(f.hdr.flags) +
                        ") where the TLS handshake was expected (a peer without tls-creds, or "
                        "an older tern?)");
    tls_->give_input(f.data, f.hdr.length);
  }
}

Result<PeerKey> FrameTls::channel_key(const PeerKey* psk) const {
  uint8_t exported[32];
  if (Status s = tls_->export_key(kChannelKeyLabel, &hello_, sizeof(hello_), exported,
                                  sizeof(exported));
      !s.is_ok())
    return s;
  PeerKey k;
  k.origin = psk ? "(x509 and " + psk->origin + ")" : "(x509: the TLS handshake's exporter)";
  if (psk == nullptr) {
    k.bytes.assign(exported, exported + sizeof(exported));
    return k;
  }
  uint8_t msg[sizeof(kMixLabel) + sizeof(exported)];
  std::memcpy(msg, kMixLabel, sizeof(kMixLabel));
  std::memcpy(msg + sizeof(kMixLabel), exported, sizeof(exported));
  uint8_t mixed[32];
  unsigned int len = sizeof(mixed);
  if (HMAC(EVP_sha256(), psk->bytes.data(), static_cast<int>(psk->bytes.size()), msg,
           sizeof(msg), mixed, &len) == nullptr)
    return Status(Code::kInternal, "HMAC-SHA256 failed mixing the keys");
  k.bytes.assign(mixed, mixed + sizeof(mixed));
  return k;
}

Result<std::vector<PeerKey>> tls_handshake_channels(
    const std::vector<RawChannel*>& channels, const std::vector<HelloPayload>& hellos,
    std::shared_ptr<const TlsChannelConfig> config, const std::string& host,
    const PeerKey* psk, Clock::time_point deadline) {
  const size_t n = channels.size();
  std::vector<std::unique_ptr<FrameTls>> shakes;
  for (size_t i = 0; i < n; ++i) {
    auto t = FrameTls::client(config, host, hellos[i]);
    if (!t) return t.status();
    shakes.push_back(std::move(*t));
  }
  std::vector<bool> done(n, false);
  size_t finished = 0;
  while (finished < n) {
    bool progress = false, nap_short = false;
    std::vector<pollfd> fds;
    for (size_t i = 0; i < n; ++i) {
      if (done[i]) continue;
      auto r = shakes[i]->poll(*channels[i]);
      if (!r)
        return Status(r.status().code(),
                      "channel " + std::to_string(i) + ": " + r.status().message());
      if (*r) {
        done[i] = true;
        ++finished;
        progress = true;
        continue;
      }
      RawChannel& ch = *channels[i];
      if (!shakes[i]->waiting_to_send() && ch.wait_fd() >= 0 && ch.wakes_on_receive())
        fds.push_back({ch.wait_fd(), POLLIN, 0});
      else
        nap_short = true;
    }
    if (finished == n) break;
    if (Clock::now() >= deadline)
      return Status(Code::kTimeout,
                    "the destination did not answer the TLS handshake in time (does it run "
                    "with tls-creds? both sides need them on this transport)");
    if (!progress) wait_for_channels(fds, nap_short, deadline);
  }
  std::vector<PeerKey> keys;
  for (size_t i = 0; i < n; ++i) {
    auto k = shakes[i]->channel_key(psk);
    if (!k) return k.status();
    keys.push_back(std::move(*k));
  }
  return keys;
}

}  // namespace tern::toolkit
