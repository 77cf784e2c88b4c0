// Test support: a man in the middle for tcp migrations. It listens on 127.0.0.1 (an ephemeral
// port), opens one connection to the real destination per source connection and forwards bytes
// both ways, unchanged, except on the first connection that announces channel 0: there it
// edits the first frame after the channel handshake (hello 48 + offer 96 + proof 96 bytes into
// the source's stream), which with a key is the sealed layout, and forwards everything else as
// it came. Flip: one byte of that frame's payload inverted. Replay: the frame sent twice.
// FlipPage: on every bulk channel (index 2..) the source's frames are read one by one after the
// handshake; one byte of the first page frame's data is inverted, and of every later page frame
// for the same place, on any bulk connection (so that page never arrives unchanged), until
// pass_all().
//
// Threads: one forwarding thread, joined by the destructor. Blocking sockets (loopback only).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/toolkit/raw_channel.h"
#include "dataplane/wire.h"

namespace tern::testing_support {

class TamperProxy {
 public:
  enum class Edit { kFlip, kReplay, kFlipPage };

  // Forwards to 127.0.0.1:target_port. port() is 0 when the proxy could not listen.
  TamperProxy(int target_port, Edit edit) : target_port_(target_port), edit_(edit) {
    listen_fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(0);
    socklen_t len = sizeof(a);
    if (::bind(listen_fd_, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0 ||
        ::listen(listen_fd_, 64) != 0 ||
        ::getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&a), &len) != 0)
      return;
    port_ = ntohs(a.sin_port);
    thread_ = std::thread([this] { run(); });
  }
  ~TamperProxy() {
    stop_ = true;
    if (thread_.joinable()) thread_.join();
    for (Pipe& p : pipes_) {
      ::close(p.src);
      ::close(p.dst);
    }
    ::close(listen_fd_);
  }
  int port() const { return port_; }
  // Whether the edit was made (the first channel 0 reached its first frame after the handshake;
  // FlipPage: a page frame was changed).
  bool edited() const { return edited_; }
  // Connections accepted from now on are forwarded unchanged.
  void pass_all() { pass_all_ = true; }

 private:
  static constexpr size_t kHandshakeBytes = 48 + 96 + 96;  // hello, offer, proof
  struct Pipe {
    int src = -1, dst = -1;
    size_t forwarded = 0;       // bytes of the source's stream sent on so far
    bool pass = false;          // nothing more to edit on this connection
    bool pages = false;         // FlipPage: a bulk channel whose page frames are read
    bool src_open = true, dst_open = true;
    std::vector<uint8_t> held;  // the source's bytes held back while the frame is incomplete
  };

  static sockaddr_in loopback(int port) {
    sockaddr_in a{};
    a.sin_family = AF_INET;
    a.sin_port = htons(static_cast<uint16_t>(port));
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    return a;
  }
  static void write_all(int fd, const uint8_t* p, size_t n) {
    while (n > 0) {
      ssize_t w = ::send(fd, p, n, MSG_NOSIGNAL);
      if (w <= 0) return;
      p += w;
      n -= static_cast<size_t>(w);
    }
  }

  void accept_one() {
    Pipe p;
    p.src = ::accept(listen_fd_, nullptr, nullptr);
    p.dst = ::socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in a = loopback(target_port_);
    if (::connect(p.dst, reinterpret_cast<sockaddr*>(&a), sizeof(a)) != 0) {
      ::close(p.src);
      ::close(p.dst);
      return;
    }
    p.pass = pass_all_;
    pipes_.push_back(std::move(p));
  }

  // FlipPage, a bulk channel after its handshake: whole frames are forwarded, page frames for
  // the target place changed.
  void forward_frames(Pipe& p) {
    size_t at = 0;
    while (p.held.size() - at >= sizeof(FrameHeader)) {
      FrameHeader h;
      std::memcpy(&h, p.held.data() + at, sizeof(h));
      const size_t frame = sizeof(FrameHeader) + toolkit::payload_length(h);
      if (p.held.size() - at < frame) break;
      if (static_cast<FrameType>(h.type) == FrameType::kPage && h.length > 0) {
        if (!edited_) {
          target_block_ = h.block;
          target_offset_ = h.offset;
          edited_ = true;
        }
        if (h.block == target_block_ && h.offset == target_offset_)
          p.held[at + sizeof(FrameHeader) + h.length / 2] ^= 0xff;
      }
      at += frame;
    }
    write_all(p.dst, p.held.data(), at);
    p.held.erase(p.held.begin(), p.held.begin() + static_cast<long>(at));
  }

  // Source -> destination bytes of `p`: held until the hello says which channel this is and,
  // on the channel 0 to edit, until its first frame after the handshake is whole.
  void from_source(Pipe& p, const uint8_t* data, size_t n) {
    if (p.pass) return write_all(p.dst, data, n);
    p.held.insert(p.held.end(), data, data + n);
    const size_t have = p.forwarded + p.held.size();
    if (have < sizeof(FrameHeader) + sizeof(HelloPayload)) return;
    if (p.forwarded == 0) {
      HelloPayload h;
      std::memcpy(&h, p.held.data() + sizeof(FrameHeader), sizeof(h));
      p.pages = edit_ == Edit::kFlipPage && h.channel_index >= kFirstBulkChannel;
      if ((edit_ == Edit::kFlipPage && !p.pages) ||
          (edit_ != Edit::kFlipPage && (h.channel_index != 0 || edited_))) {
        p.pass = true;
        write_all(p.dst, p.held.data(), p.held.size());
        p.held.clear();
        return;
      }
    }
    // Forward what precedes the frame at once: the handshake needs its answers.
    if (p.forwarded < kHandshakeBytes) {
      const size_t now = std::min(kHandshakeBytes - p.forwarded, p.held.size());
      write_all(p.dst, p.held.data(), now);
      p.forwarded += now;
      p.held.erase(p.held.begin(), p.held.begin() + static_cast<long>(now));
    }
    if (p.pages) {
      if (p.forwarded == kHandshakeBytes) forward_frames(p);
      return;
    }
    if (p.held.size() < sizeof(FrameHeader)) return;
    FrameHeader h;
    std::memcpy(&h, p.held.data(), sizeof(h));
    const size_t frame = sizeof(FrameHeader) + h.length;
    if (p.held.size() < frame) return;
    std::vector<uint8_t> out(p.held.begin(), p.held.begin() + static_cast<long>(frame));
    if (edit_ == Edit::kFlip) out[sizeof(FrameHeader) + h.length / 2] ^= 0xff;
    else out.insert(out.end(), p.held.begin(), p.held.begin() + static_cast<long>(frame));
    out.insert(out.end(), p.held.begin() + static_cast<long>(frame), p.held.end());
    write_all(p.dst, out.data(), out.size());
    p.held.clear();
    p.pass = true;
    edited_ = true;
  }

  void run() {
    std::vector<uint8_t> buf(1 << 16);
    while (!stop_) {
      std::vector<pollfd> fds{{listen_fd_, POLLIN, 0}};
      for (Pipe& p : pipes_) {  // a closed side is -1: poll skips it
        fds.push_back({p.src_open ? p.src : -1, POLLIN, 0});
        fds.push_back({p.dst_open ? p.dst : -1, POLLIN, 0});
      }
      if (::poll(fds.data(), fds.size(), 50) <= 0) continue;
      if (fds[0].revents & POLLIN) accept_one();
      for (size_t i = 0; i + 1 < fds.size() && i / 2 < pipes_.size(); i += 2) {
        Pipe& p = pipes_[i / 2];
        if (fds[i + 1].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t r = ::recv(p.src, buf.data(), buf.size(), 0);
          if (r <= 0) {
            p.src_open = false;
            ::shutdown(p.dst, SHUT_WR);
          } else from_source(p, buf.data(), static_cast<size_t>(r));
        }
        if (fds[i + 2].revents & (POLLIN | POLLHUP | POLLERR)) {
          ssize_t r = ::recv(p.dst, buf.data(), buf.size(), 0);
          if (r <= 0) {
            p.dst_open = false;
            ::shutdown(p.src, SHUT_WR);
          } else write_all(p.src, buf.data(), static_cast<size_t>(r));
        }
      }
    }
  }

  int target_port_;
  Edit edit_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stop_{false};
  std::atomic<bool> edited_{false};
  std::atomic<bool> pass_all_{false};
  uint32_t target_block_ = 0;  // FlipPage: the place of the page changed (forwarding thread)
  uint64_t target_offset_ = 0;
  std::thread thread_;
  std::vector<Pipe> pipes_;  // forwarding thread only
};

}  // namespace tern::testing_support
