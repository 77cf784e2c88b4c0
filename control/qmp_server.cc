#include "control/qmp_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <sstream>

namespace tern::control {
namespace {

constexpr int kReadsPerWakeup = 16;  // then other clients get their turn

void wake(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n;
}

// Best effort, for a socket about to be closed: one non-blocking write.
void send_and_close(int fd, const std::string& text) {
  ssize_t n = ::send(fd, text.data(), text.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  (void)n;
  close(fd);
}

// The supplementary groups of `pid` (from /proc), for a peer admitted by group.
std::vector<gid_t> peer_groups(pid_t pid) {
  std::vector<gid_t> groups;
  std::ifstream status("/proc/" + std::to_string(pid) + "/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind("Groups:", 0) != 0) continue;
    std::istringstream in(line.substr(7));
    unsigned long g;
    while (in >> g) groups.push_back(static_cast<gid_t>(g));
  }
  return groups;
}

}  // namespace

Result<std::unique_ptr<QmpServer>> QmpServer::listen(const std::string& path, Json greeting,
                                                     QmpServerOptions options) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Status(Code::kInvalidArgument, "socket path '" + path + "' must be 1.." +
                                              std::to_string(sizeof(addr.sun_path) - 1) +
                                              " characters long");
  }
  path.copy(addr.sun_path, path.size());
  int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
  if (fd < 0) return errno_status("socket(AF_UNIX)");
  auto fail = [fd](Status s) {
    close(fd);
    return s;
  };
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno == EADDRINUSE) {
    // Replace a stale socket file, but never steal the socket of a live server.
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) close(probe);
    if (live) return fail(Status(Code::kUnavailable, "socket " + path + " is in use by a running server"));
    unlink(path.c_str());
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      return fail(errno_status("bind " + path));
    }
  } else if (rc != 0) {
    return fail(errno_status("bind " + path));
  }
  // Nobody can connect before listen(), so the mode is right before the first client.
  if (options.socket_group && chown(path.c_str(), static_cast<uid_t>(-1), *options.socket_group) != 0) {
    Status s = errno_status("chown " + path + " to group " + std::to_string(*options.socket_group));
    unlink(path.c_str());
    return fail(s);
  }
  if (chmod(path.c_str(), options.socket_group ? 0660 : 0600) != 0) {
    Status s = errno_status("chmod " + path);
    unlink(path.c_str());
    return fail(s);
  }
  if (::listen(fd, 16) != 0) return fail(errno_status("listen " + path));
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) return fail(errno_status("eventfd"));
  return std::unique_ptr<QmpServer>(
      new QmpServer(path, fd, efd, std::move(greeting), std::move(options)));
}

QmpServer::QmpServer(std::string path, int listen_fd, int wake_fd, Json greeting,
                     QmpServerOptions o)
    : path_(std::move(path)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      greeting_(std::move(greeting)),
      options_(std::move(o)) {}

QmpServer::~QmpServer() {
  for (auto& c : clients_) {
    if (c->fd >= 0) close(c->fd);
  }
  close(listen_fd_);
  close(wake_fd_);
  unlink(path_.c_str());
}

void QmpServer::broadcast(const Json& event) {
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    events_.push_back(event);
  }
  wake(wake_fd_);
}

void QmpServer::stop() {
  stopping_.store(true);
  wake(wake_fd_);
}

Status QmpServer::run() {
  std::vector<pollfd> fds;
  while (!stopping_.load()) {
    fds.clear();
    fds.push_back({listen_fd_, POLLIN, 0});
    fds.push_back({wake_fd_, POLLIN, 0});
    bool any_out = false, any_partial = false;
    for (auto& c : clients_) {
      short ev = (c->closing || c->out.size() > options_.pause_reading_above) ? 0 : POLLIN;
      if (!c->out.empty()) ev |= POLLOUT;
      any_out = any_out || !c->out.empty();
      any_partial = any_partial || c->reader.pending() > 0;
      fds.push_back({c->fd, ev, 0});
    }
    // With output queued or half an object read, wake up now and then to drop a client that
    // stopped reading or went quiet.
    int64_t tick = 1000;
    if (any_out) tick = std::min<int64_t>(tick, options_.stall_timeout.count() / 4);
    if (any_partial) tick = std::min<int64_t>(tick, options_.partial_timeout.count() / 4);
    tick = std::max<int64_t>(tick, 10);
    if (poll(fds.data(), fds.size(), any_out || any_partial ? static_cast<int>(tick) : -1) < 0) {
      if (errno == EINTR) continue;
      return errno_status("poll");
    }
    if (fds[1].revents & POLLIN) {
      uint64_t v;
      ssize_t n = read(wake_fd_, &v, sizeof v);
      (void)n;
      drain_events();
    }
    // clients_ may grow in accept_clients(); only the first fds.size()-2 are polled here.
    size_t polled = fds.size() - 2;
    for (size_t i = 0; i < polled && !stopping_.load(); ++i) {
      Client& c = *clients_[i];
      short re = fds[i + 2].revents;
      if (c.fd >= 0 && (re & POLLIN)) read_client(c);
      if (c.fd >= 0 && (re & POLLOUT)) flush(c);
      // Hung up: nothing more can be written (read_client() saw any data before the EOF).
      if (c.fd >= 0 && (re & (POLLHUP | POLLERR)) && !(re & POLLIN)) drop(c);
    }
    if (fds[0].revents & POLLIN) accept_clients();
    drop_stalled(Clock::now());
    std::erase_if(clients_, [](const std::unique_ptr<Client>& c) {
      if (c->fd >= 0 && !(c->closing && c->out.empty())) return false;
      if (c->fd >= 0) close(c->fd);
      return true;
    });
  }
  flush_all_before_exit();
  return Status::ok();
}

std::optional<std::string> QmpServer::refuse_reason(int fd) const {
  ucred cred{};
  socklen_t len = sizeof cred;
  if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) != 0) {
    return "cannot read the peer's credentials (SO_PEERCRED): " + errno_status("").message();
  }
  const uid_t self = geteuid();
  if (cred.uid == 0 || cred.uid == self) return std::nullopt;
  for (uid_t u : options_.allowed_uids) {
    if (cred.uid == u) return std::nullopt;
  }
  std::vector<gid_t> admitted = options_.allowed_gids;
  if (options_.socket_group) admitted.push_back(*options_.socket_group);
  if (!admitted.empty()) {
    std::vector<gid_t> groups = peer_groups(cred.pid);
    groups.push_back(cred.gid);
    for (gid_t g : groups) {
      if (std::find(admitted.begin(), admitted.end(), g) != admitted.end()) return std::nullopt;
    }
  }
  return "uid " + std::to_string(cred.uid) + " is not allowed on this QMP socket (ternd admits " +
         "root, its own uid " + std::to_string(self) +
         ", and the uids and groups given with --allow-uid, --allow-group or --socket-group)";
}

void QmpServer::accept_clients() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;  // EAGAIN, or a transient error: try again on the next wake-up
    if (std::optional<std::string> why = refuse_reason(fd)) {
      send_and_close(fd, to_wire(make_error(*why, std::nullopt)));
      continue;
    }
    if (clients_.size() >= options_.max_clients) {
      send_and_close(fd, to_wire(make_error("too many QMP clients (at most " +
                                                std::to_string(options_.max_clients) +
                                                "); try again later",
                                            std::nullopt)));
      continue;
    }
    auto c = std::make_unique<Client>(options_.stream);
    c->fd = fd;
    c->last_write = c->last_read = Clock::now();
    send(*c, greeting_);
    clients_.push_back(std::move(c));
  }
}

void QmpServer::read_client(Client& c) {
  char buf[8192];
  std::vector<StreamItem> items;
  for (int reads = 0; reads < kReadsPerWakeup; ++reads) {
    if (c.fd < 0 || c.closing || c.out.size() > options_.pause_reading_above) return;
    ssize_t n = read(c.fd, buf, sizeof buf);
    if (n > 0) {
      c.last_read = Clock::now();
      items.clear();
      c.reader.feed(std::string_view(buf, static_cast<size_t>(n)), items);
      for (const StreamItem& item : items) {
        handle_item(c, item);
        if (c.fd < 0 || stopping_.load()) return;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    // EOF (the client may have only shut down its sending side: it still gets what is queued)
    // or an error.
    if (n == 0) {
      c.closing = true;
      flush(c);
    } else {
      drop(c);
    }
    return;
  }
}

void QmpServer::handle_item(Client& c, const StreamItem& item) {
  // The request boundary: nothing a request does may take the daemon (and its guest) down.
  try {
    if (!item.ok) {
      send(c, make_error(item.error, std::nullopt));
      return;
    }
    std::optional<Json> id;
    Result<Request> req = parse_request(item.text, &id);
    if (!req) {
      send(c, make_error(req.status().message(), id));
      return;
    }
    handle_request(c, *req);
  } catch (const std::exception& e) {
    try {
      send(c, make_error(std::string("internal error: ") + utf8_truncate(e.what(), 200),
                         std::nullopt));
    } catch (...) {
      drop(c);
    }
  } catch (...) {
    drop(c);
  }
}

void QmpServer::handle_request(Client& c, const Request& req) {
  if (req.execute == "qmp_capabilities") {
    if (c.negotiated) {
      send(c, make_error("Capabilities negotiation is already complete, command ignored", req.id,
                         "CommandNotFound"));
      return;
    }
    // Only "enable" is a valid argument, and no capability is offered (not even "oob").
    for (const auto& [key, value] : req.arguments.items()) {
      if (key != "enable") {
        send(c, make_error("Parameter '" + utf8_truncate(key, 64) + "' is unexpected", req.id));
        return;
      }
      if (!value.is_array()) {
        send(c, make_error("Invalid parameter type for 'enable', expected: array", req.id));
        return;
      }
      for (const Json& cap : value) {
        if (!cap.is_string()) {
          send(c, make_error("Invalid parameter type for 'enable', expected: string", req.id));
          return;
        }
        std::string name = cap.get<std::string>();
        send(c, make_error(name == "oob" ? "Capability 'oob' not available"
                                         : "Parameter 'enable' does not accept value '" +
                                               utf8_truncate(name, 64) + "'",
                           req.id));
        return;
      }
    }
    c.negotiated = true;
    send(c, make_return(Json::object(), req.id));
    return;
  }
  if (!c.negotiated) {
    send(c, make_error("Expecting capabilities negotiation with 'qmp_capabilities'", req.id,
                       "CommandNotFound"));
    return;
  }
  send(c, handler_ ? handler_(req) : make_error("no command handler installed", req.id));
}

void QmpServer::send(Client& c, const Json& msg) {
  if (c.fd < 0) return;
  if (c.out.empty()) c.last_write = Clock::now();
  c.out += to_wire(msg);
  if (c.out.size() > options_.max_pending_out) {
    dropped_slow_.fetch_add(1);
    drop(c);  // never hold the daemon's memory for a client that stopped reading
    return;
  }
  flush(c);
}

void QmpServer::flush(Client& c) {
  while (c.fd >= 0 && !c.out.empty()) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
      c.last_write = Clock::now();
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      drop(c);
    }
  }
}

void QmpServer::drop(Client& c) {
  if (c.fd >= 0) close(c.fd);
  c.fd = -1;
  c.out.clear();
}

void QmpServer::drop_stalled(Clock::time_point now) {
  for (auto& c : clients_) {
    if (c->fd >= 0 && !c->out.empty() && now - c->last_write > options_.stall_timeout) {
      dropped_slow_.fetch_add(1);
      drop(*c);
    }
    // Half an object and then silence. A paused or closing client is not read, so its
    // silence is ternd's doing, not its own: the clock restarts when reading does.
    if (c->closing || c->out.size() > options_.pause_reading_above) {
      c->last_read = now;
    } else if (c->fd >= 0 && c->reader.pending() > 0 &&
               now - c->last_read > options_.partial_timeout) {
      dropped_silent_.fetch_add(1);
      std::string why = "no complete JSON object within " +
                        std::to_string(options_.partial_timeout.count()) +
                        " ms of the last byte received; closing";
      if (c->out.empty()) {
        send_and_close(c->fd, to_wire(make_error(why, std::nullopt)));
        c->fd = -1;
      } else {
        drop(*c);
      }
    }
  }
}

void QmpServer::drain_events() {
  std::vector<Json> events;
  {
    std::lock_guard<std::mutex> lock(events_mu_);
    events.swap(events_);
  }
  for (const Json& e : events) {
    for (auto& c : clients_) {
      if (c->negotiated && !c->closing) send(*c, e);
    }
  }
}

void QmpServer::flush_all_before_exit() {
  drain_events();
  for (int tries = 0; tries < 20; ++tries) {
    bool pending = false;
    for (auto& c : clients_) {
      flush(*c);
      pending = pending || (c->fd >= 0 && !c->out.empty());
    }
    if (!pending) return;
    poll(nullptr, 0, 10);
  }
}

}  // namespace tern::control
