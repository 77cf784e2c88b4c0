// A QMP client for ternctl, the demo and tests: connects to a ternd socket, reads the greeting,
// negotiates capabilities, then runs commands one at a time. Events that arrive while waiting
// for a reply are kept and handed out by next_event(). Not thread-safe: one user thread.
#pragma once

#include <chrono>
#include <deque>
#include <memory>
#include <optional>
#include <string>

#include "control/qmp_protocol.h"
#include "dataplane/status.h"

namespace tern::control {

class QmpClient {
 public:
  // Connects, waiting up to `timeout` for the socket to appear and the greeting to arrive.
  static Result<std::unique_ptr<QmpClient>> connect(
      const std::string& path, std::chrono::milliseconds timeout = std::chrono::seconds(5));
  ~QmpClient();
  QmpClient(const QmpClient&) = delete;
  QmpClient& operator=(const QmpClient&) = delete;

  const Json& greeting() const { return greeting_; }

  // Runs one command and returns its "return" value. A QMP error reply becomes a Status whose
  // message is the server's "desc"; a lost connection or a timeout is kIo / kTimeout.
  Result<Json> execute(const std::string& command, const Json& arguments = Json::object(),
                       std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Like execute() but returns the whole reply object ({"return"} or {"error"}).
  Result<Json> execute_raw(const std::string& command, const Json& arguments,
                           std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // Next queued or arriving event, or nullopt after `timeout`.
  std::optional<Json> next_event(std::chrono::milliseconds timeout);

 private:
  explicit QmpClient(int fd) : fd_(fd) {}
  // Next message from the socket (greeting, reply or event).
  Result<Json> read_message(std::chrono::steady_clock::time_point deadline);
  Status write_line(const std::string& line);

  int fd_;
  std::string in_;
  Json greeting_;
  std::deque<Json> events_;
  uint64_t next_id_ = 1;
};

}  // namespace tern::control
