#include "dataplane/transport/detail/tcp_channel.h"

#include <errno.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

namespace tern::detail {

namespace {
constexpr size_t kHeaderBytes = sizeof(FrameHeader);
constexpr int kMaxIov = 256;
}  // namespace

TcpChannel::TcpChannel(int fd)
    : fd_(fd),
      slots_(std::make_unique<std::array<Slot, kSlots>>()),
      rx_buf_(std::make_unique_for_overwrite<uint8_t[]>(kRxBuffer)) {}  // touched as used

TcpChannel::~TcpChannel() {
  if (fd_ >= 0) ::close(fd_);
}

void TcpChannel::fail_io(const char* what, int err) {
  if (err == EPIPE || err == ECONNRESET) {
    fail_peer_closed();
    return;
  }
  fail(errno_status(std::string("channel ") + std::to_string(index_) + ": " + what, err));
}

size_t TcpChannel::post(const TxFrame* frames, size_t n) {
  if (failed()) return 0;
  const uint64_t room = kSlots - (posted_ - sent_);
  if (n > room) n = room;
  for (size_t i = 0; i < n; ++i) {
    const TxFrame& f = frames[i];
    Slot& slot = (*slots_)[posted_ % kSlots];
    const uint32_t len = payload_length(f.hdr);
    if (len != 0 && f.payload == nullptr) {
      fail(Status(Code::kInvalidArgument, "channel " + std::to_string(index_) +
                                              ": frame posted without its payload"));
      return i;
    }
    store_frame(slot, f, len);  // a page is borrowed until the kernel holds it
    slot.length = len;
    ++posted_;
  }
  return n;
}

bool TcpChannel::flush() {
  if (failed()) return false;
  while (sent_ < posted_) {
    iovec iov[kMaxIov];
    int k = 0;
    size_t offered = 0;
    for (uint64_t s = sent_; s < posted_ && k + 2 <= kMaxIov; ++s) {
      Slot& slot = (*slots_)[s % kSlots];
      size_t off = s == sent_ ? sent_bytes_ : 0;
      if (off < kHeaderBytes) {
        iov[k++] = {reinterpret_cast<uint8_t*>(&slot.hdr) + off, kHeaderBytes - off};
        offered += kHeaderBytes - off;
        off = 0;
      } else {
        off -= kHeaderBytes;
      }
      if (slot.length > off) {
        iov[k++] = {const_cast<uint8_t*>(slot.payload) + off, slot.length - off};
        offered += slot.length - off;
      }
    }
    msghdr msg{};
    msg.msg_iov = iov;
    msg.msg_iovlen = k;
    ssize_t w = ::sendmsg(fd_, &msg, MSG_NOSIGNAL);
    if (w < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN || errno == EWOULDBLOCK) return true;
      fail_io("send", errno);
      return false;
    }
    size_t left = static_cast<size_t>(w);
    while (left > 0) {
      const size_t rest = kHeaderBytes + (*slots_)[sent_ % kSlots].length - sent_bytes_;
      if (left < rest) {
        sent_bytes_ += left;
        break;
      }
      left -= rest;
      sent_bytes_ = 0;
      ++sent_;
    }
    if (static_cast<size_t>(w) < offered) return true;  // socket buffer full: resume later
  }
  return true;
}

size_t TcpChannel::poll_tx() {
  const size_t done = sent_ - tx_seen_;
  tx_seen_ = sent_;
  return visible_tx(done);
}

ssize_t TcpChannel::read_buffer(size_t want) {
  if (rx_begin_ == rx_end_) {
    rx_begin_ = rx_end_ = 0;
  } else if (kRxBuffer - rx_end_ < want) {
    std::memmove(rx_buf_.get(), rx_buf_.get() + rx_begin_, rx_end_ - rx_begin_);
    rx_end_ -= rx_begin_;
    rx_begin_ = 0;
  }
  want = std::min(want, kRxBuffer - rx_end_);
  while (true) {
    ssize_t r = ::read(fd_, rx_buf_.get() + rx_end_, want);
    if (r > 0) {
      rx_end_ += static_cast<size_t>(r);
      return r;
    }
    if (r == 0) {
      fail_peer_closed();
      return -1;
    }
    if (errno == EINTR) continue;
    if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
    fail_io("receive", errno);
    return -1;
  }
}

bool TcpChannel::advance_payload() {
  const size_t buffered = std::min<size_t>(rx_end_ - rx_begin_, need_ - got_);
  if (buffered) {
    std::memcpy(dst_ + got_, rx_buf_.get() + rx_begin_, buffered);
    rx_begin_ += buffered;
    got_ += buffered;
  }
  while (got_ < need_) {
    // The buffer is empty here. Read the rest of this payload in place, and some look-ahead
    // (at least the next header) into the buffer, in one syscall.
    rx_begin_ = rx_end_ = 0;
    iovec iov[2] = {{dst_ + got_, need_ - got_}, {rx_buf_.get(), lookahead_}};
    ssize_t r = ::readv(fd_, iov, 2);
    if (r == 0) {
      fail_peer_closed();
      return false;
    }
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) fail_io("receive", errno);
      return false;
    }
    const size_t into_payload = std::min<size_t>(static_cast<size_t>(r), need_ - got_);
    got_ += into_payload;
    rx_end_ = static_cast<size_t>(r) - into_payload;
    if (got_ < need_) return false;  // the socket is drained for now
  }
  return true;
}

size_t TcpChannel::poll_rx(RxFrame* out, size_t max) {
  if (failed()) return 0;
  size_t n = 0;
  while (n < max) {
    if (state_ == RxState::kHeader) {
      const size_t have = rx_end_ - rx_begin_;
      if (have < kHeaderBytes) {
        const ssize_t r = read_buffer(std::max(lookahead_, kHeaderBytes - have));
        if (r <= 0 || rx_end_ - rx_begin_ < kHeaderBytes) return n;
      }
      std::memcpy(&cur_, rx_buf_.get() + rx_begin_, kHeaderBytes);
      rx_begin_ += kHeaderBytes;
      if (!accept_header(cur_)) return n;
      need_ = payload_length(cur_);
      got_ = 0;
      if (static_cast<FrameType>(cur_.type) == FrameType::kPage) {
        dst_ = land_page(cur_);
        if (dst_ == nullptr) return n;
      } else if (need_ != 0) {
        rx_control_.resize(need_);
        dst_ = rx_control_.data();
      } else {
        dst_ = nullptr;
      }
      lookahead_ = need_ >= kDirectPayload ? kHeaderBytes : kRxBuffer;
      state_ = RxState::kPayload;
    }
    if (!advance_payload()) return n;
    state_ = RxState::kHeader;
    out[n].hdr = cur_;
    out[n].data = need_ != 0 ? dst_ : nullptr;
    ++n;
    const bool control_payload =
        need_ != 0 && static_cast<FrameType>(cur_.type) != FrameType::kPage;
    if (control_payload || ends_staged_batch(cur_)) return n;  // see RxFrame::data, staging
  }
  return n;
}

}  // namespace tern::detail
