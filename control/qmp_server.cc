#include "control/qmp_server.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>

namespace tern::control {
namespace {

constexpr size_t kMaxPendingOut = 16u << 20;  // a client this far behind is dropped

void wake(int fd) {
  uint64_t one = 1;
  ssize_t n = write(fd, &one, sizeof one);
  (void)n;
}

}  // namespace

Result<std::unique_ptr<QmpServer>> QmpServer::listen(const std::string& path, Json greeting) {
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
  int rc = bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr);
  if (rc != 0 && errno == EADDRINUSE) {
    // Replace a stale socket file, but never steal the socket of a live server.
    int probe = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    bool live = probe >= 0 && connect(probe, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0;
    if (probe >= 0) close(probe);
    if (live) {
      close(fd);
      return Status(Code::kUnavailable, "socket " + path + " is in use by a running server");
    }
    unlink(path.c_str());
    if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0) {
      Status s = errno_status("bind " + path);
      close(fd);
      return s;
    }
  } else if (rc != 0) {
    Status s = errno_status("bind " + path);
    close(fd);
    return s;
  }
  if (::listen(fd, 16) != 0) {
    Status s = errno_status("listen " + path);
    close(fd);
    return s;
  }
  int efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (efd < 0) {
    Status s = errno_status("eventfd");
    close(fd);
    return s;
  }
  return std::unique_ptr<QmpServer>(new QmpServer(path, fd, efd, std::move(greeting)));
}

QmpServer::QmpServer(std::string path, int listen_fd, int wake_fd, Json greeting)
    : path_(std::move(path)),
      listen_fd_(listen_fd),
      wake_fd_(wake_fd),
      greeting_(std::move(greeting)) {}

QmpServer::~QmpServer() {
  for (auto& c : clients_) close(c->fd);
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
    for (auto& c : clients_) {
      short ev = c->closing ? 0 : POLLIN;
      if (!c->out.empty()) ev |= POLLOUT;
      fds.push_back({c->fd, ev, 0});
    }
    if (poll(fds.data(), fds.size(), -1) < 0) {
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
      if (re & (POLLIN | POLLHUP | POLLERR)) read_client(c);
      if (c.fd >= 0 && (re & POLLOUT)) flush(c);
    }
    if (fds[0].revents & POLLIN) accept_clients();
    std::erase_if(clients_, [](const std::unique_ptr<Client>& c) {
      if (c->fd >= 0 && !(c->closing && c->out.empty())) return false;
      if (c->fd >= 0) close(c->fd);
      return true;
    });
  }
  flush_all_before_exit();
  return Status::ok();
}

void QmpServer::accept_clients() {
  for (;;) {
    int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_CLOEXEC | SOCK_NONBLOCK);
    if (fd < 0) return;  // EAGAIN, or a transient error: try again on the next wake-up
    auto c = std::make_unique<Client>();
    c->fd = fd;
    send(*c, greeting_);
    clients_.push_back(std::move(c));
  }
}

void QmpServer::read_client(Client& c) {
  char buf[8192];
  for (;;) {
    ssize_t n = read(c.fd, buf, sizeof buf);
    if (n > 0) {
      c.in.append(buf, static_cast<size_t>(n));
      size_t start = 0;
      for (size_t nl; (nl = c.in.find('\n', start)) != std::string::npos; start = nl + 1) {
        std::string line = c.in.substr(start, nl - start);
        if (!line.empty() && line.back() == '\r') line.pop_back();
        if (line.find_first_not_of(" \t") != std::string::npos) handle_line(c, line);
        if (c.fd < 0 || stopping_.load()) return;
      }
      c.in.erase(0, start);
      if (c.in.size() > kMaxLineBytes) {
        send(c, make_error("input line longer than " + std::to_string(kMaxLineBytes) +
                               " bytes; closing the connection",
                           std::nullopt));
        c.closing = true;
        return;
      }
      continue;
    }
    if (n < 0 && (errno == EAGAIN || errno == EINTR)) return;
    close(c.fd);  // EOF or error: the client is gone
    c.fd = -1;
    return;
  }
}

void QmpServer::handle_line(Client& c, const std::string& line) {
  std::optional<Json> id;
  Result<Request> req = parse_request(line, &id);
  if (!req) {
    send(c, make_error(req.status().message(), id));
    return;
  }
  if (req->execute == "qmp_capabilities") {
    if (c.negotiated) {
      send(c, make_error("Capabilities negotiation is already complete, command ignored", req->id,
                         "CommandNotFound"));
    } else {
      c.negotiated = true;
      send(c, make_return(Json::object(), req->id));
    }
    return;
  }
  if (!c.negotiated) {
    send(c, make_error("Expecting capabilities negotiation with 'qmp_capabilities'", req->id,
                       "CommandNotFound"));
    return;
  }
  send(c, handler_ ? handler_(*req) : make_error("no command handler installed", req->id));
}

void QmpServer::send(Client& c, const Json& msg) {
  if (c.fd < 0) return;
  c.out += msg.dump() + "\n";
  if (c.out.size() > kMaxPendingOut) {
    close(c.fd);  // never block the daemon on a client that stopped reading
    c.fd = -1;
    return;
  }
  flush(c);
}

void QmpServer::flush(Client& c) {
  while (c.fd >= 0 && !c.out.empty()) {
    ssize_t n = ::send(c.fd, c.out.data(), c.out.size(), MSG_NOSIGNAL);
    if (n > 0) {
      c.out.erase(0, static_cast<size_t>(n));
    } else if (n < 0 && errno == EINTR) {
      continue;
    } else if (n < 0 && errno == EAGAIN) {
      return;
    } else {
      close(c.fd);
      c.fd = -1;
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
      if (c->negotiated) send(*c, e);
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
