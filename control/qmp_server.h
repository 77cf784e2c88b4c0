// The QMP socket of ternd: a unix stream socket carrying a JSON stream (qmp_stream.h), any
// number of clients up to a bound. Each client is greeted, must negotiate with
// "qmp_capabilities" (as in QEMU), then sends commands that the handler answers in order;
// events are pushed to every negotiated client. No input can crash or stall the server: values
// are bounded in size and depth before they are parsed, every exception stops at the request,
// a client that does not read its replies is paused, then dropped, and one that sends part of an
// object and goes quiet is dropped, without holding up others.
//
// Access: the socket file is created 0600 (0660 with a group), and each client's SO_PEERCRED
// must name root, the server's own uid, an allowed uid or an allowed group; others get one
// error message and are closed.
//
// Threads: run() and the handler run on one thread (the daemon's main thread). broadcast() and
// stop() may be called from any thread; stop() is also async-signal-safe.
#pragma once

#include <sys/types.h>

#include <atomic>
#include <chrono>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "control/qmp_protocol.h"
#include "control/qmp_stream.h"
#include "dataplane/status.h"

namespace tern::control {

struct QmpServerOptions {
  StreamLimits stream;                        // per object: size and nesting depth
  size_t max_clients = 64;                    // more are told so and closed
  size_t pause_reading_above = 1 << 20;       // replies queued: stop reading the client's input
  size_t max_pending_out = 16u << 20;         // replies and events queued: drop the client
  std::chrono::milliseconds stall_timeout{30'000};  // queued output without progress: drop
  // Half an object received and then no byte for this long: told so and dropped (a client
  // that goes quiet mid-command would otherwise hold its slot and buffer forever).
  std::chrono::milliseconds partial_timeout{30'000};
  std::optional<gid_t> socket_group;          // socket 0660 with this group, and admit it
  std::vector<uid_t> allowed_uids;            // besides root and the server's own uid
  std::vector<gid_t> allowed_gids;            // peers whose groups include one of these
};

class QmpServer {
 public:
  // Answers one request (after negotiation) with make_return() or make_error(). May throw:
  // the server turns an exception into a GenericError reply.
  using Handler = std::function<Json(const Request&)>;

  // Binds `path`. A stale socket file is replaced; a path where a live server answers is an
  // error, as is a path longer than a sockaddr_un holds.
  static Result<std::unique_ptr<QmpServer>> listen(const std::string& path, Json greeting,
                                                   QmpServerOptions options = {});
  ~QmpServer();  // closes every socket and removes the socket file
  QmpServer(const QmpServer&) = delete;
  QmpServer& operator=(const QmpServer&) = delete;

  void set_handler(Handler handler) { handler_ = std::move(handler); }
  // Queues `event` for every negotiated client.
  void broadcast(const Json& event);
  // Makes run() return after writing out replies already queued.
  void stop();
  // Serves until stop(). Errors only for a failure of the listening socket itself.
  Status run();
  const std::string& path() const { return path_; }

  // Clients dropped so far for not reading their output (tests).
  uint64_t dropped_slow_clients() const { return dropped_slow_.load(); }
  // Clients dropped so far for going quiet in the middle of an object (tests).
  uint64_t dropped_silent_clients() const { return dropped_silent_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Client {
    explicit Client(const StreamLimits& limits) : reader(limits) {}
    int fd = -1;
    JsonStreamReader reader;
    std::string out;
    Clock::time_point last_write;  // last time `out` shrank (or was empty)
    Clock::time_point last_read;   // last time a byte came in (or the connection was made)
    bool negotiated = false;
    bool closing = false;  // close once `out` is written
  };

  QmpServer(std::string path, int listen_fd, int wake_fd, Json greeting, QmpServerOptions o);
  void accept_clients();
  // Empty when `fd`'s peer may connect; else the reason, for the refusal message.
  std::optional<std::string> refuse_reason(int fd) const;
  void read_client(Client& c);
  void handle_item(Client& c, const StreamItem& item);
  void handle_request(Client& c, const Request& req);
  void send(Client& c, const Json& msg);
  void flush(Client& c);
  void drop(Client& c);
  void drop_stalled(Clock::time_point now);
  void drain_events();
  void flush_all_before_exit();

  std::string path_;
  int listen_fd_;
  int wake_fd_;  // eventfd: broadcast() and stop() wake run()
  Json greeting_;
  QmpServerOptions options_;
  Handler handler_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<bool> stopping_{false};
  std::atomic<uint64_t> dropped_slow_{0};
  std::atomic<uint64_t> dropped_silent_{0};
  std::mutex events_mu_;
  std::vector<Json> events_;  // guarded by events_mu_
};

}  // namespace tern::control
