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

#include "dataplane/transport.h"

namespace tern::toolkit {

class HelloTransportAccess;  // defined by the conformance suite only

class HelloTransport : public Transport {
 public:
  // kInvalidArgument unless 3 <= count <= kMaxChannels; else connect_with_hellos with
  // standard_hellos(count, session_id).
  Result<ChannelSet> connect(const std::string& address, uint32_t count, uint64_t session_id,
                             std::chrono::milliseconds timeout) final;

 protected:
  // One channel per entry of `hellos`, each announced with that hello exactly as given;
  // channels come back in the order of `hellos`. Fails on the first channel that cannot be
  // opened or announced before `timeout`.
  virtual Result<ChannelSet> connect_with_hellos(const std::string& address,
                                                 const std::vector<HelloPayload>& hellos,
                                                 std::chrono::milliseconds timeout) = 0;

 private:
  friend class HelloTransportAccess;
};

}  // namespace tern::toolkit
