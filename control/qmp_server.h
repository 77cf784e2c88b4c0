// The QMP socket of ternd: a unix stream socket, newline-delimited JSON, any number of clients.
// Each client is greeted, must negotiate with "qmp_capabilities" (as in QEMU), then sends
// commands that the handler answers in order; events are pushed to every negotiated client.
//
// Threads: run() and the handler run on one thread (the daemon's main thread). broadcast() and
// stop() may be called from any thread; stop() is also async-signal-safe.
#pragma once

#include <atomic>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "control/qmp_protocol.h"
#include "dataplane/status.h"

namespace tern::control {

class QmpServer {
 public:
  // Answers one request (after negotiation) with make_return() or make_error().
  using Handler = std::function<Json(const Request&)>;

  // Binds `path`. A stale socket file is replaced; a path where a live server answers is an
  // error, as is a path longer than a sockaddr_un holds.
  static Result<std::unique_ptr<QmpServer>> listen(const std::string& path, Json greeting);
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

 private:
  struct Client {
    int fd = -1;
    std::string in;
    std::string out;
    bool negotiated = false;
    bool closing = false;  // close once `out` is written
  };

  QmpServer(std::string path, int listen_fd, int wake_fd, Json greeting);
  void accept_clients();
  void read_client(Client& c);
  void handle_line(Client& c, const std::string& line);
  void send(Client& c, const Json& msg);
  void flush(Client& c);
  void drain_events();
  void flush_all_before_exit();

  std::string path_;
  int listen_fd_;
  int wake_fd_;  // eventfd: broadcast() and stop() wake run()
  Json greeting_;
  Handler handler_;
  std::vector<std::unique_ptr<Client>> clients_;
  std::atomic<bool> stopping_{false};
  std::mutex events_mu_;
  std::vector<Json> events_;  // guarded by events_mu_
};

}  // namespace tern::control
