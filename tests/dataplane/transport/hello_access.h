// The conformance suite's seam into HelloTransport (dataplane/toolkit/hello_transport.h): it
// calls a transport's protected connect_with_hellos to play a source that breaks the hello
// rules. Tests only; the Transport interface stays as the engine sees it.
#pragma once

#include <chrono>
#include <string>
#include <vector>

#include "dataplane/toolkit/hello_transport.h"

namespace tern::toolkit {

class HelloTransportAccess {
 public:
  // `t` must be built on HelloTransport (every built-in transport is); else kInvalidArgument.
  static Result<ChannelSet> connect_with_hellos(Transport& t, const std::string& address,
                                                const std::vector<HelloPayload>& hellos,
                                                std::chrono::milliseconds timeout) {
    auto* h = dynamic_cast<HelloTransport*>(&t);
    if (h == nullptr)
      return Status(Code::kInvalidArgument, "transport '" + std::string(t.name()) +
                                                "' is not built on toolkit::HelloTransport");
    return h->connect_with_hellos(address, hellos, timeout);
  }
};

}  // namespace tern::toolkit
