// The loopback transport: source and destination engines in one process ("loopback:" or
// "loopback:NAME"). A listening LoopbackTransport registers NAME in a process-wide rendezvous
// table; a connecting one finds it there, builds a ring pair per channel (see
// detail/loopback_channel.h) and hands the far ends to the listener's backlog, hello first,
// exactly as a tcp source would. It behaves like the real transports (hellos, back-pressure,
// peer close, hostile frames fail the channel), so the engine and the conformance suite run
// unchanged on it.
//
// Lifetime: destroying a sending channel ends its borrow of page payloads: the destructor copies
// any published but unconsumed page payload (so frames flushed before a close still arrive, as
// on tcp). Page memory must therefore stay valid until the channel is counted out by poll_tx
// or destroyed, whichever comes first.
//
// Threads: a LoopbackTransport is used by one control thread at a time; listeners and
// connectors may be on different threads.
#pragma once

#include <chrono>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/toolkit/hello_transport.h"
#include "dataplane/toolkit/session_gatherer.h"

namespace tern {

namespace detail {
struct LoopbackListener;
}

class LoopbackTransport final : public toolkit::HelloTransport {
 public:
  LoopbackTransport() = default;
  ~LoopbackTransport() override;  // stops listening; unaccepted channels see a peer close

  std::string_view name() const override { return "loopback"; }
  // `address` is NAME ("" means "default"). A NAME already listened on is kUnavailable.
  Result<std::string> listen(const std::string& address) override;
  // Channels are gathered by session across calls (toolkit::SessionGatherer); a bad hello
  // drops its channel only (take_rejected).
  Result<ChannelSet> accept(std::chrono::milliseconds timeout) override;
  std::vector<Status> take_rejected() override { return gatherer_.take_rejected(); }

 private:
  // HelloTransport: one channel per hello, each hello sent unchanged.
  Result<ChannelSet> connect_with_hellos(const std::string& address,
                                         const std::vector<HelloPayload>& hellos,
                                         std::chrono::milliseconds timeout) override;

  std::shared_ptr<detail::LoopbackListener> listener_;
  std::string listen_name_;
  toolkit::SessionGatherer gatherer_;  // control thread only
};

// The registry entry (transports/builtin_transports.cc): never the default (one process only).
TransportRegistration loopback_transport_registration();

}  // namespace tern
