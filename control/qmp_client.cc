#include "control/qmp_client.h"

#include <poll.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace tern::control {

using Clock = std::chrono::steady_clock;

Result<std::unique_ptr<QmpClient>> QmpClient::connect(const std::string& path,
                                                      std::chrono::milliseconds timeout) {
  sockaddr_un addr{};
  addr.sun_family = AF_UNIX;
  if (path.empty() || path.size() >= sizeof(addr.sun_path)) {
    return Status(Code::kInvalidArgument, "socket path '" + path + "' is too long or empty");
  }
  path.copy(addr.sun_path, path.size());
  auto deadline = Clock::now() + timeout;
  int fd = -1;
  for (;;) {
    fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return errno_status("socket(AF_UNIX)");
    if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) break;
    int err = errno;
    close(fd);
    if ((err != ENOENT && err != ECONNREFUSED) || Clock::now() >= deadline) {
      return errno_status("connect to ternd at " + path, err);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  std::unique_ptr<QmpClient> client(new QmpClient(fd));
  Result<Json> greeting = client->read_message(deadline);
  if (!greeting) return greeting.status();
  if (!greeting->is_object() || !greeting->contains("QMP")) {
    return Status(Code::kProtocol,
                  path + " did not greet with a QMP banner: " + greeting->dump().substr(0, 120));
  }
  client->greeting_ = *greeting;
  Result<Json> neg = client->execute("qmp_capabilities", Json::object(),
                                     std::chrono::duration_cast<std::chrono::milliseconds>(
                                         deadline - Clock::now() + std::chrono::seconds(1)));
  if (!neg) return neg.status();
  return client;
}

QmpClient::~QmpClient() { close(fd_); }

Status QmpClient::write_line(const std::string& line) {
  size_t off = 0;
  while (off < line.size()) {
    ssize_t n = ::send(fd_, line.data() + off, line.size() - off, MSG_NOSIGNAL);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return errno_status("write to ternd");
    off += static_cast<size_t>(n);
  }
  return Status::ok();
}

Result<Json> QmpClient::read_message(Clock::time_point deadline) {
  for (;;) {
    size_t nl = in_.find('\n');
    if (nl != std::string::npos) {
      std::string line = in_.substr(0, nl);
      in_.erase(0, nl + 1);
      if (line.find_first_not_of(" \t\r") == std::string::npos) continue;
      Json j = Json::parse(line, nullptr, false);
      if (j.is_discarded()) {
        return Status(Code::kProtocol, "ternd sent invalid JSON: " + line.substr(0, 120));
      }
      return j;
    }
    auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) return Status(Code::kTimeout, "no reply from ternd in time");
    pollfd p{fd_, POLLIN, 0};
    int r = poll(&p, 1, static_cast<int>(std::min<int64_t>(left.count(), 1 << 30)));
    if (r < 0 && errno == EINTR) continue;
    if (r < 0) return errno_status("poll");
    if (r == 0) continue;
    char buf[65536];
    ssize_t n = read(fd_, buf, sizeof buf);
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) return errno_status("read from ternd");
    if (n == 0) return Status(Code::kIo, "ternd closed the connection");
    in_.append(buf, static_cast<size_t>(n));
  }
}

Result<Json> QmpClient::execute_raw(const std::string& command, const Json& arguments,
                                    std::chrono::milliseconds timeout) {
  uint64_t id = next_id_++;
  Json req = {{"execute", command}, {"id", id}};
  if (!arguments.is_null() && !(arguments.is_object() && arguments.empty())) {
    req["arguments"] = arguments;
  }
  if (Status s = write_line(req.dump() + "\n"); !s) return s;
  auto deadline = Clock::now() + timeout;
  for (;;) {
    Result<Json> msg = read_message(deadline);
    if (!msg) return msg.status();
    if (msg->contains("event")) {
      events_.push_back(std::move(*msg));
      continue;
    }
    // Replies come in order; one without our id (a framing error) is still ours.
    if (msg->contains("id") && (*msg)["id"] != Json(id)) continue;
    return msg;
  }
}

Result<Json> QmpClient::execute(const std::string& command, const Json& arguments,
                                std::chrono::milliseconds timeout) {
  Result<Json> reply = execute_raw(command, arguments, timeout);
  if (!reply) return reply.status();
  if (reply->contains("error")) {
    const Json& e = (*reply)["error"];
    std::string desc = e.value("desc", e.dump());
    return Status(Code::kInvalidArgument, desc);
  }
  if (!reply->contains("return")) {
    return Status(Code::kProtocol, "reply without 'return': " + reply->dump().substr(0, 120));
  }
  return (*reply)["return"];
}

std::optional<Json> QmpClient::next_event(std::chrono::milliseconds timeout) {
  if (!events_.empty()) {
    Json e = std::move(events_.front());
    events_.pop_front();
    return e;
  }
  auto deadline = Clock::now() + timeout;
  for (;;) {
    Result<Json> msg = read_message(deadline);
    if (!msg) return std::nullopt;
    if (msg->contains("event")) return *msg;
  }
}

}  // namespace tern::control
