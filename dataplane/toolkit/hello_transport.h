// Transport toolkit: HelloTransport, the Transport base that owns the one connect() path. A
// transport built on it writes only the part that differs, connect_with_hellos: open one
// channel per hello to an address and send that hello, unchanged, as the channel's first frame
// (toolkit::send_hello). connect() checks the channel count and passes the standard hellos.
//
// connect_with_hellos is protected, not part of the Transport interface: the engine connects
// only through connect(). The transport conformance suite reaches it through
// HelloTransportAccess (tests/dataplane/transport/hello_access.h) to play a source that breaks the hello
// rules (duplicate index, wrong count, foreign session), so it must not check them itself.
//
// Threads: control path only, like Transport.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/tls_credentials.h"
#include "dataplane/transport.h"

namespace tern::toolkit {

class HelloTransportAccess;  // defined by the conformance suite only

class HelloTransport : public Transport {
 public:
  // kInvalidArgument unless 3 <= count <= kMaxChannels; else connect_with_hellos with
  // standard_hellos(count, session_id).
  Result<ChannelSet> connect(const std::string& address, uint32_t count, uint64_t session_id,
                             std::chrono::milliseconds timeout) final;
  // x509 over the channels' frames (channel_tls.h): connect() runs the TLS handshake on every
  // channel after its hello, then the key handshake with the keys it exported. A transport
  // with TLS of its own (tcp) overrides both; a listening transport hands frame_tls() to its
  // SessionGatherer.
  Status set_tls(std::shared_ptr<const TlsChannelConfig> tls) override {
    frame_tls_ = std::move(tls);
    return Status::ok();
  }
  std::string encryption() const override;

 protected:
  // One channel per entry of `hellos`, each announced with that hello exactly as given;
  // channels come back in the order of `hellos`. Fails on the first channel that cannot be
  // opened or announced before `timeout`.
  virtual Result<ChannelSet> connect_with_hellos(const std::string& address,
                                                 const std::vector<HelloPayload>& hellos,
                                                 std::chrono::milliseconds timeout) = 0;
  // The host a source's TLS checks the destination's certificate against when tls-hostname
  // is not set: "" (the default) when the address names none (tls-hostname is then required).
  virtual std::string tls_default_host(const std::string& address) const {
    (void)address;
    return "";
  }
  const std::shared_ptr<const TlsChannelConfig>& frame_tls() const { return frame_tls_; }

 private:
  friend class HelloTransportAccess;
  std::shared_ptr<const TlsChannelConfig> frame_tls_;
};

}  // namespace tern::toolkit
