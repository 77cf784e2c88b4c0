// Transport toolkit: SessionGatherer, the destination's side of the hello exchange across many
// connections and many accept() calls. A listening transport hands it every new connection; the
// gatherer reads each one's hello without blocking, files the channel under its session and
// hands out a session once all its channels are in, however far apart they arrived. What fails
// is dropped, never the listener: a connection whose first frame is not a good hello, or that
// sends none before its own deadline; a hello that does not fit its session (count, index);
// a session that is not complete by its deadline. Each drop leaves a reason (take_rejected) for
// the log. With a key (set_peer_key), a channel is filed only once it has also passed the
// channel handshake (channel_auth.h) within its hello deadline; one that fails it is dropped
// the same way, and cannot take a slot in anyone's session. With x509 (set_tls) the TLS
// handshake comes first, within the same deadline. Everything it holds is bounded (GatherLimits), so a flood of connections costs a
// fixed amount of memory and evicts the oldest waiters first.
//
// Threads: the transport's accept() caller only (control path). Allocates.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <deque>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "dataplane/peer_key.h"
#include "dataplane/toolkit/channel_auth.h"
#include "dataplane/toolkit/channel_tls.h"
#include "dataplane/toolkit/hello.h"

namespace tern::toolkit {

struct GatherLimits {
  // A connection must deliver its hello within this of being handed to the gatherer.
  std::chrono::milliseconds hello_timeout{10000};
  // Every channel of a session must be in within this of its first hello.
  std::chrono::milliseconds session_timeout{60000};
  size_t max_waiting = 64;  // connections whose hello has not come yet
  size_t max_sessions = 8;  // incomplete sessions gathered at once
  size_t max_rejected = 32; // reasons kept for take_rejected (older ones are counted only)
};

class SessionGatherer {
 public:
  explicit SessionGatherer(GatherLimits limits = {}) : limits_(limits) {}

  // Channels that arrive from now on must prove they know `key`; nullptr: hello only.
  void set_peer_key(std::shared_ptr<const PeerKey> key) { key_ = std::move(key); }
  // Channels that arrive from now on must pass a TLS handshake with these credentials first
  // (channel_tls.h), then the key handshake with the key it exported (mixed with the
  // pre-shared key, if any); nullptr: none.
  void set_tls(std::shared_ptr<const TlsChannelConfig> tls) { tls_ = std::move(tls); }
  // Connections added from now on get this hello deadline (GatherLimits::hello_timeout).
  void set_hello_timeout(std::chrono::milliseconds t) { limits_.hello_timeout = t; }

  // A new connection whose hello has not been read yet. At max_waiting the oldest waiter is
  // dropped. `peer` names it in messages ("127.0.0.1:5000", "queue 3").
  void add_connection(std::unique_ptr<RawChannel> ch, std::string peer);
  // Reads the hellos that have arrived (one poll_rx per waiter), files their channels, drops
  // what failed or is past its deadline. True when anything changed.
  bool poll();
  // A complete session, channels ordered by index (the one completed first), if any.
  std::optional<ChannelSet> take_complete();
  // The waiters' wait_fds (readable when a hello may have arrived; -1 entries skipped).
  std::vector<int> wait_fds() const;
  // The earliest deadline of a waiter or an incomplete session (time_point::max() if none).
  Clock::time_point next_deadline() const;
  // Why connections, channels and sessions were dropped since the last call.
  std::vector<Status> take_rejected();
  // "waiting for 1 hello; session 0x1f: 2 of 4 channels", for timeout messages.
  std::string progress() const;
  size_t waiting() const { return waiting_.size(); }
  // Drops every channel held (for a transport's destructor that must order its teardown).
  void clear() {
    waiting_.clear();
    sessions_.clear();
    complete_.clear();
  }

 private:
  struct Waiter {
    std::unique_ptr<RawChannel> ch;
    std::string peer;
    Clock::time_point deadline;
    std::optional<HelloPayload> hello;     // read; the handshake (auth) is still going on
    std::unique_ptr<FrameTls> tls;         // x509: before auth
    std::unique_ptr<AuthResponder> auth;
  };
  struct Gathering {
    HelloAssembler set;
    Clock::time_point deadline;
  };
  void reject(Status s);
  void file(Waiter w, const HelloPayload& hello);

  // One look at a waiter: its hello, then its handshake. Filed: true; still waiting: false;
  // an error: drop it with that reason.
  Result<bool> advance(Waiter& w);

  GatherLimits limits_;
  std::shared_ptr<const PeerKey> key_;
  std::shared_ptr<const TlsChannelConfig> tls_;
  std::deque<Waiter> waiting_;                    // oldest first
  std::map<uint64_t, Gathering> sessions_;        // incomplete, by session id
  std::deque<ChannelSet> complete_;
  std::vector<Status> rejected_;
  uint64_t rejected_dropped_ = 0;                 // reasons beyond max_rejected
};

}  // namespace tern::toolkit
