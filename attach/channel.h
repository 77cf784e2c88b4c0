// One end of an attach connection (docs/attach-protocol.md): sends and receives whole messages
// on a unix stream socket, with their file descriptors as SCM_RIGHTS, each receive bounded by a
// deadline. A message whose header is malformed, whose payload does not arrive whole in time,
// or whose fd count is not what its type needs is refused before anything in it is used.
//
// Threads: one thread sends and receives at a time (callers serialize); owns its socket.
#pragma once

#include <chrono>
#include <cstdint>
#include <string>
#include <vector>

#include "attach/protocol.h"

namespace tern::attach {

// An owned file descriptor (closed on destruction; -1 = none).
class UniqueFd {
 public:
  UniqueFd() = default;
  explicit UniqueFd(int fd) : fd_(fd) {}
  ~UniqueFd() { reset(); }
  UniqueFd(UniqueFd&& o) noexcept : fd_(o.release()) {}
  UniqueFd& operator=(UniqueFd&& o) noexcept {
    if (this != &o) {
      reset();
      fd_ = o.release();
    }
    return *this;
  }
  int get() const { return fd_; }
  int release() {
    int f = fd_;
    fd_ = -1;
    return f;
  }
  void reset();

 private:
  int fd_ = -1;
};

struct Message {
  MsgType type = MsgType::kReply;
  uint32_t id = 0;
  Bytes payload;
  std::vector<UniqueFd> fds;
};

class Channel {
 public:
  explicit Channel(UniqueFd socket) : sock_(std::move(socket)) {}
  // Connects to the attach socket at `path`, retrying until `limit` while it does not exist
  // yet or refuses (a ternd that is still starting).
  static Result<Channel> connect(const std::string& path, std::chrono::milliseconds limit);

  int fd() const { return sock_.get(); }
  // Sends the header and payload, with `fds` attached to the first byte. Never blocks forever:
  // gives up after `limit`.
  Status send(MsgType type, uint32_t id, View payload, const std::vector<int>& fds = {},
              std::chrono::milliseconds limit = std::chrono::seconds(30));
  // Receives one message within `limit`. kIo "closed" when the peer closed the socket before a
  // header; kTimeout when nothing came; kProtocol for a malformed message (then the
  // connection is unusable).
  Result<Message> receive(std::chrono::milliseconds limit);
  // Sends an ERROR (best effort, short deadline).
  void send_error(uint32_t id, const Status& s);
  void close() { sock_.reset(); }
  bool is_open() const { return sock_.get() >= 0; }

 private:
  Status read_exact(uint8_t* p, size_t n, std::chrono::steady_clock::time_point deadline,
                    bool header_start);
  UniqueFd sock_;
};

}  // namespace tern::attach
