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

TcpChannel::TcpChannel(int fd, std::unique_ptr<TlsStream> tls)
    : fd_(fd),
      tls_(std::move(tls)),
      slots_(std::make_unique<std::array<Slot, kSlots>>()),
      rx_buf_(std::make_unique_for_overwrite<uint8_t[]>(kRxBuffer)) {  // touched as used
  if (tls_) tls_stage_ = std::make_unique_for_overwrite<uint8_t[]>(kTlsRecord);
}

std::string TcpChannel::tls_description() const {
  return tls_ && tls_->established() ? tls_->description() : "";
}

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

void TcpChannel::advance_sent(size_t left) {
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
}

void TcpChannel::next_tls_unit() {
  const Slot& first = (*slots_)[sent_ % kSlots];
  if (sent_bytes_ >= kHeaderBytes && first.length - (sent_bytes_ - kHeaderBytes) >= kTlsRecord) {
    tls_unit_ = first.payload + (sent_bytes_ - kHeaderBytes);  // encrypted from where it lies
    tls_unit_len_ = first.length - (sent_bytes_ - kHeaderBytes);
    return;
  }
  // Headers and small payloads (and the head of a big one) fill one record.
  size_t n = 0;
  for (uint64_t s = sent_; s < posted_ && n < kTlsRecord; ++s) {
    const Slot& slot = (*slots_)[s % kSlots];
    size_t off = s == sent_ ? sent_bytes_ : 0;
    if (off < kHeaderBytes) {
      const size_t take = std::min(kHeaderBytes - off, kTlsRecord - n);
      std::memcpy(tls_stage_.get() + n, reinterpret_cast<const uint8_t*>(&slot.hdr) + off, take);
      n += take;
      off = kHeaderBytes;
    }
    const size_t take = std::min<size_t>(slot.length - (off - kHeaderBytes), kTlsRecord - n);
    if (take) std::memcpy(tls_stage_.get() + n, slot.payload + (off - kHeaderBytes), take);
    n += take;
  }
  tls_unit_ = tls_stage_.get();
  tls_unit_len_ = n;
}

bool TcpChannel::flush_tls() {
  while (sent_ < posted_) {
    if (tls_unit_len_ == 0) next_tls_unit();
    const ssize_t w = tls_->write(tls_unit_, tls_unit_len_);
    if (w == 0) return true;  // the socket is full: the same bytes go next time
    if (w < 0) {
      if (w == TlsStream::kClosed) fail_tls_closed();
      else fail(Status(tls_->error().code(), "channel " + std::to_string(index_) + ": " +
                                                  tls_->error().message()));
      return false;
    }
    tls_unit_len_ = 0;  // a partial write took whole records: the rest is staged afresh
    advance_sent(static_cast<size_t>(w));
  }
  return true;
}

void TcpChannel::fail_tls_closed() {
  if (tls_received_ || !tls_->is_client()) return fail_peer_closed();
  // In TLS 1.3 a destination checks the client certificate after the client's handshake ended:
  // a refusal whose alert the source did not read looks like this.
  fail(Status(Code::kIo, "peer closed channel " + std::to_string(index_) +
                             " before it sent anything over TLS (did the destination refuse "
                             "this source's certificate? its log says why)"));
}

ssize_t TcpChannel::read_tls(uint8_t* buf, size_t len) {
  const ssize_t r = tls_->read(buf, len);
  if (r > 0) tls_received_ = true;
  if (r >= 0) return r;
  if (r == TlsStream::kClosed) {
    fail_tls_closed();
  } else {
    fail(Status(tls_->error().code(),
                "channel " + std::to_string(index_) + ": " + tls_->error().message()));
  }
  return -1;
}

bool TcpChannel::flush() {
  if (failed()) return false;
  if (tls_) return flush_tls();
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
    advance_sent(static_cast<size_t>(w));
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
  if (tls_) {
    const ssize_t r = read_tls(rx_buf_.get() + rx_end_, want);
    if (r > 0) rx_end_ += static_cast<size_t>(r);
    return r;
  }
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
  if (via_buffer_) return advance_buffered_payload();
  const size_t buffered = std::min<size_t>(rx_end_ - rx_begin_, need_ - got_);
  if (buffered) {
    std::memcpy(dst_ + got_, rx_buf_.get() + rx_begin_, buffered);
    rx_begin_ += buffered;
    got_ += buffered;
  }
  while (tls_ && got_ < need_) {
    // Through SSL_read straight into the payload's place (a page: its landing address).
    const ssize_t r = read_tls(dst_ + got_, need_ - got_);
    if (r <= 0) return false;
    got_ += static_cast<size_t>(r);
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

bool TcpChannel::advance_buffered_payload() {
  while (true) {
    size_t buffered = std::min<size_t>(rx_end_ - rx_begin_, need_ - got_);
    // Whole pages until the last piece: a file write that ends inside a new page makes the
    // kernel zero the rest of it, which the next write then overwrites.
    if (buffered < need_ - got_) buffered -= buffered % kTargetPageSize;
    if (buffered) {
      landing_->copy_fragment(dst_ + got_, rx_buf_.get() + rx_begin_, buffered);
      rx_begin_ += buffered;
      got_ += buffered;
    }
    if (got_ == need_) {
      Landing::end_fragments();
      return true;
    }
    if (read_buffer(kRxBuffer) <= 0) return false;  // less than a page is left in the buffer
  }
}

size_t TcpChannel::poll_rx(RxFrame* out, size_t max) {
  if (failed()) return 0;
  if (tls_ && !tls_->established()) {  // a destination's channel: the server handshake first
    auto done = tls_->handshake();
    if (!done) {
      fail(done.status());
      return 0;
    }
    if (!*done) return 0;
  }
  size_t n = 0;
  while (n < max) {
    if (state_ == RxState::kHeader) {
      // A TLS record may end inside a header: read on until it is whole or nothing is left.
      while (rx_end_ - rx_begin_ < kHeaderBytes) {
        const ssize_t r = read_buffer(std::max(lookahead_, kHeaderBytes - (rx_end_ - rx_begin_)));
        if (r <= 0) return n;
      }
      std::memcpy(&cur_, rx_buf_.get() + rx_begin_, kHeaderBytes);
      rx_begin_ += kHeaderBytes;
      if (!accept_header(cur_)) return n;
      need_ = payload_length(cur_);
      got_ = 0;
      via_buffer_ = false;
      if (static_cast<FrameType>(cur_.type) == FrameType::kPage) {
        dst_ = land_page(cur_);
        if (dst_ == nullptr) return n;
        via_buffer_ = landing_->lands_in_file(cur_);
      } else if (need_ != 0) {
        rx_control_.resize(need_);
        dst_ = rx_control_.data();
      } else {
        dst_ = nullptr;
      }
      lookahead_ = need_ >= kDirectPayload && !via_buffer_ ? kHeaderBytes : kRxBuffer;
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
