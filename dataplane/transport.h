// The two-tier transport interface (design section 4).
//
// Control tier: a Transport, created by name from the registry (below), listens or connects and
// hands out Channels. Channel 0 carries control frames, channel 1 is the urgent (postcopy request)
// channel, channels 2.. are bulk (precopy) channels.
// Data tier: a Channel moves frames in bursts: post, flush (one doorbell per loop iteration),
// poll_tx, poll_rx. One virtual call per burst, never per page; no allocation, exceptions or
// logging on these calls. A Channel is owned by exactly one worker thread at a time.
#pragma once

#include <chrono>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "dataplane/channel_keys.h"
#include "dataplane/landing.h"
#include "dataplane/peer_key.h"
#include "dataplane/status.h"
#include "dataplane/tls_credentials.h"
#include "dataplane/wire.h"

namespace tern {

inline constexpr uint32_t kControlChannel = 0;
inline constexpr uint32_t kUrgentChannel = 1;
inline constexpr uint32_t kFirstBulkChannel = 2;

struct TxFrame {
  FrameHeader hdr;
  // kPage: hdr.length bytes, referenced (zero-copy) until poll_tx counts this frame; the engine
  // only sends from guest RAM or buffers it keeps alive. Other types: copied by post().
  const void* payload = nullptr;
};

struct RxFrame {
  FrameHeader hdr;
  // kPage: where the payload landed (per the channel's Landing). kHello/kControl/kRequest with a
  // payload: a channel-owned buffer valid until the next poll_rx. Otherwise nullptr.
  uint8_t* data = nullptr;
};

class Channel {
 public:
  virtual ~Channel() = default;

  // Queues up to n frames; returns how many were accepted (fewer when the send window is full).
  virtual size_t post(const TxFrame* frames, size_t n) = 0;
  // Pushes queued frames toward the peer. False once the channel has failed (see error()).
  virtual bool flush() = 0;
  // Number of posted frames completed since the last call (in post order): their payloads are
  // no longer referenced.
  virtual size_t poll_tx() = 0;
  // Receives up to max frames into out. kPage payloads land where landing() says; when the
  // landing is staged the call returns right after a frame flagged kFlagHostPageEnd, so the
  // engine places that host page before the staging buffer is reused. A frame the landing
  // refuses, or a malformed header, fails the channel (error()) and nothing is written.
  virtual size_t poll_rx(RxFrame* out, size_t max) = 0;
  // Frames posted but not yet handed to the peer (0 = nothing left to flush).
  virtual size_t tx_pending() const = 0;
  // Sticky: ok until the channel fails (peer closed, I/O error, protocol violation).
  virtual const Status& error() const = 0;
  // Readable when poll_rx may return frames, or -1. Idle workers block on it; the worker calls
  // poll_rx afterwards, which also drains it (it must not stay readable once poll_rx has come
  // back empty: a worker sleeping on it would spin).
  virtual int wait_fd() const = 0;
  // True when wait_fd turns readable as soon as a frame arrives, so a thread may sleep on it
  // while it waits for an answer; false when it is only a poll timer (no receive interrupt).
  virtual bool wakes_on_receive() const { return true; }
  // Writable (POLLOUT) once a post() refused for a full send window may be taken again, so a
  // sender with nothing else to do sleeps on it instead of spinning; -1 when the window reopens
  // only through flush()/poll_tx() (completions, ring credits): the sender keeps polling then.
  virtual int tx_wait_fd() const { return -1; }
  // Index in the migration (0 control, 1 urgent, 2.. bulk), as announced in the hello.
  virtual uint32_t index() const = 0;

  // The landing table consulted by poll_rx. Set or changed only while the channel's worker is
  // not inside poll_rx; it must outlive the channel's use of it.
  void set_landing(const Landing* landing) { landing_ = landing; }
  const Landing* landing() const { return landing_; }
  // The channel's session keys when it passed the handshake with a pre-shared key (the engine
  // then seals its control frames: engine/frame_seal.h); nullptr without a key.
  const ChannelKeys* keys() const { return has_keys_ ? &keys_ : nullptr; }

 protected:
  const Landing* landing_ = nullptr;
  ChannelKeys keys_{};  // set by the toolkit before the channel is handed out, fixed after
  bool has_keys_ = false;
};

using ChannelSet = std::vector<std::unique_ptr<Channel>>;

class Transport {
 public:
  virtual ~Transport() = default;
  virtual std::string_view name() const = 0;

  // Destination: start listening on `address` (the URI without "name:"). Returns the URI a
  // source should connect to, with any wildcard port resolved (e.g. "tcp:127.0.0.1:40111").
  virtual Result<std::string> listen(const std::string& address) = 0;
  // Destination: wait up to `timeout` for one source and accept all of its channels (the
  // count comes from the first hello). Channels are returned ordered by index. A timeout loses
  // nothing: channels gathered so far wait for the next call (each with its own deadline). A
  // connection whose handshake fails is dropped, not the listener (see take_rejected).
  virtual Result<ChannelSet> accept(std::chrono::milliseconds timeout) = 0;
  // Destination: why connections, channels or incomplete sessions were dropped since the last
  // call (a bad or late hello, a foreign count, a session past its deadline), for the log.
  virtual std::vector<Status> take_rejected() { return {}; }
  // Source: open `count` channels (>= 3) to `address`, each announced with a hello carrying
  // its index, the count and `session_id`. Channels are returned ordered by index.
  virtual Result<ChannelSet> connect(const std::string& address, uint32_t count,
                                     uint64_t session_id, std::chrono::milliseconds timeout) = 0;
  // Memory that pages are sent from (source) or land in (RDMA registers it; others need
  // nothing). A destination announces guest RAM only for a precopy-only migration (the layout's
  // kLayoutPrecopyOnly): the transport may then register it for remote writes, pinning it.
  virtual Status register_memory(void* addr, size_t len) {
    (void)addr;
    (void)len;
    return Status::ok();
  }
  // Everything register_memory announced is no longer sent from or landed in: registrations
  // are dropped (rdma: the peer's keys to a destination's guest RAM stop working). Called by
  // the destination before the guest runs there. Channels must be idle.
  virtual void release_memory() {}
  // PCI address ("0000:3b:00.0") of the device the channels use, or "" when there is none, it
  // is not a PCI device (soft-RoCE, memif, sockets) or it is not known. Asked after connect() or
  // accept(); the engine pins its workers on cores near it (choose_worker_cpus).
  virtual std::string device_pci() const { return ""; }

  // Before listen()/connect(): every channel must then prove it knows `key` (the channel
  // handshake, toolkit/channel_auth.h) before connect()/accept() hand it out, and the peer
  // must prove it too. nullptr (the default): hello only, unauthenticated.
  void set_peer_key(std::shared_ptr<const PeerKey> key) { peer_key_ = std::move(key); }
  bool authenticated() const { return peer_key_ != nullptr; }
  // Before listen(): how long a destination waits for each connection's hello and channel
  // handshake before it drops that connection (a source bounds its own with connect()'s
  // timeout). Default 10 s.
  void set_handshake_timeout(std::chrono::milliseconds t) { handshake_timeout_ = t; }
  // Before listen()/connect(): authenticate every channel with x509 credentials
  // (docs/security.md): tcp runs TLS 1.3 under its channels; transports built on
  // toolkit::HelloTransport run the handshake in frames (toolkit/channel_tls.h); nullptr: none.
  // This default (a transport that does neither) is kUnavailable, with a message that says so.
  virtual Status set_tls(std::shared_ptr<const TlsChannelConfig> tls) {
    if (tls == nullptr) return Status::ok();
    return Status(Code::kUnavailable,
                  "tls-creds is set, but the " + std::string(name()) +
                      " transport has no TLS (it keeps kernel bypass; docs/security.md): "
                      "clear tls-creds, or migrate over tcp");
  }
  // How the channels are encrypted once connect()/accept() handed them out
  // ("TLS 1.3, TLS_AES_256_GCM_SHA384"), "" when they are not. Any thread.
  virtual std::string encryption() const { return ""; }

 protected:
  std::shared_ptr<const PeerKey> peer_key_;
  std::chrono::milliseconds handshake_timeout_{10000};
};

struct ParsedUri {
  std::string transport;  // "tcp", "loopback", "rdma", "dpdk"
  std::string address;    // the rest after the first ':'
};
// "tcp:127.0.0.1:4444" -> {tcp, 127.0.0.1:4444}. Errors name the bad part.
Result<ParsedUri> parse_uri(const std::string& uri);

// Registry: the transports this program registered. The engine knows transports only through
// it; transports/builtin_transports.h registers the built-in ones (a program calls
// register_builtin_transports() once at start). A transport that is not registered (not built
// into the binary) does not exist for the engine.
//
// Threads: any thread; registration normally happens once, before the first migration.

// Whether a transport can run on this host, and why (not), in words for the user.
struct TransportAvailability {
  bool usable = false;
  std::string reason;  // "an RDMA device is present (device rxe0)", "dpdk cannot start: ..."
};

struct TransportRegistration {
  std::string name;  // the URI prefix: lowercase letters and digits
  std::function<std::unique_ptr<Transport>()> create;
  // Asked by choose_default_transport, in registration order (which is therefore the order of
  // preference); it may be slow (dpdk starts its EAL). Empty: never the default (loopback,
  // which joins two engines of one process).
  std::function<TransportAvailability()> available;
};

// Adds `r` after the ones registered before. kInvalidArgument for a malformed name or no
// factory; kUnavailable when the name is already registered (the first one stays).
Status register_transport(TransportRegistration r);

// Names of the registered transports, in registration order.
std::vector<std::string> transport_names();
// An unregistered name (unknown, or not built into this binary) is a kNotFound error that lists
// the available transports.
Result<std::unique_ptr<Transport>> create_transport(std::string_view name);

// Runs transport `name`'s availability check now (dpdk: starts its EAL, some 200 ms here, of
// which 100 ms is DPDK's TSC calibration on CPUs that do not report their TSC frequency), so
// that a later migration does not pay it in its setup. kNotFound for an unregistered name; a
// transport without a check is usable ("nothing to prepare").
TransportAvailability prepare_transport(std::string_view name);

struct DefaultTransport {
  std::string name;    // "" only when no registered transport can be the default
  std::string reason;  // printed to the user: why this one was chosen
};
// The first registered transport with an `available` that says usable; the reason says why each
// one before it was passed over and why this one can run. With the built-in registration: rdma
// if an RDMA device is present, else dpdk if it can start, else tcp.
DefaultTransport choose_default_transport();

}  // namespace tern
