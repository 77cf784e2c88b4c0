// tcp channel datapath: one non-blocking TCP connection per channel.
//
// Send: post() queues frame descriptors in a bounded ring (kPage payloads borrowed, others
// copied into the slot); flush() hands as many queued frames as the socket takes to one
// sendmsg (header + payload iovecs), resuming a partially written frame next time. A frame is
// complete (poll_tx) once the kernel holds all of its bytes.
// Receive: a state machine (header -> payload). Headers and small payloads are batched through
// a small receive buffer to save syscalls; a page payload is read straight into the address its
// Landing resolves, checked before a byte of it is read, or, when the landing writes it into a
// file (Landing::lands_in_file), read through the buffer and handed to the landing. wait_fd()
// is the socket.
// TLS mode (a TlsStream): the same frames as TLS records. A destination's channel runs the
// server handshake in poll_rx before its first frame; writes are gathered into 16 KiB records
// (a payload of a record or more is encrypted straight from guest RAM); a page payload is read
// through SSL_read straight into its landing address. poll_rx returns 0 only once OpenSSL has
// no plaintext left, so wait_fd() keeps its contract.
//
// Threads: one owner thread at a time (Channel contract). The fd is owned and closed here.
#pragma once

#include <array>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/toolkit/raw_channel.h"
#include "dataplane/transport/detail/tls_stream.h"

namespace tern::detail {

// The transport toolkit pieces this channel is built from (dataplane/toolkit/raw_channel.h).
using toolkit::payload_length;
using toolkit::RawChannel;
using toolkit::store_frame;

class TcpChannel final : public RawChannel {
 public:
  // Takes ownership of `fd`: a connected, non-blocking stream socket; with `tls`, frames go
  // through that TLS session over it (a client's must be established already).
  explicit TcpChannel(int fd, std::unique_ptr<TlsStream> tls = nullptr);
  ~TcpChannel() override;
  TcpChannel(const TcpChannel&) = delete;
  TcpChannel& operator=(const TcpChannel&) = delete;

  size_t post(const TxFrame* frames, size_t n) override;
  bool flush() override;
  size_t poll_tx() override;
  size_t poll_rx(RxFrame* out, size_t max) override;
  size_t tx_pending() const override { return posted_ - sent_; }
  int wait_fd() const override { return fd_; }
  int tx_wait_fd() const override { return fd_; }
  // "TLS 1.3, TLS_AES_256_GCM_SHA384" once its TLS session is established, else "".
  std::string tls_description() const;

 private:
  static constexpr uint32_t kSlots = 1024;     // frames queued on the send side
  static constexpr size_t kRxBuffer = 64 << 10;  // batches headers and small payloads
  // Frames with payloads at least this big are read with only a header's worth of look-ahead,
  // so that their bytes land directly (one copy); smaller ones go through the buffer.
  static constexpr uint32_t kDirectPayload = 16 << 10;

  struct Slot {
    FrameHeader hdr;
    const uint8_t* payload = nullptr;  // borrowed (kPage) or owned.data()
    uint32_t length = 0;               // payload bytes on the wire
    std::vector<uint8_t> owned;
  };
  enum class RxState { kHeader, kPayload };

  // Reads into [rx_end_, rx_end_ + want) of the buffer. >0 bytes, 0 nothing now, -1 failed.
  ssize_t read_buffer(size_t want);
  // Moves the current payload on (buffer first, then the socket). True when it is complete.
  bool advance_payload();
  // The same for a payload that lands in a file: through the buffer, piece by piece.
  bool advance_buffered_payload();
  void fail_io(const char* what, int err);
  // Counts `bytes` more of the queued frames as handed over (whole frames complete).
  void advance_sent(size_t bytes);
  // TLS mode: flush() through records; the next bytes to write (a staged or a direct unit);
  // SSL_read into `buf`, with read_buffer's results.
  bool flush_tls();
  void next_tls_unit();
  ssize_t read_tls(uint8_t* buf, size_t len);
  // The peer closed a TLS channel (with a hint when a source was refused silently).
  void fail_tls_closed();

  int fd_;
  std::unique_ptr<TlsStream> tls_;  // nullptr: plain tcp
  // TLS send side: the bytes of the current SSL_write, kept as they are until it takes them
  // (a write that would block is retried with the same bytes), and the record staging buffer.
  static constexpr size_t kTlsRecord = 16 << 10;
  const uint8_t* tls_unit_ = nullptr;
  size_t tls_unit_len_ = 0;
  std::unique_ptr<uint8_t[]> tls_stage_;
  bool tls_received_ = false;  // any plaintext read yet (for the message of an early close)
  // Send side (owner thread only).
  std::unique_ptr<std::array<Slot, kSlots>> slots_;
  uint64_t posted_ = 0;     // frames queued
  uint64_t sent_ = 0;       // frames the kernel holds completely
  uint64_t tx_seen_ = 0;    // completions already reported
  size_t sent_bytes_ = 0;   // bytes of frame `sent_` already written
  // Receive side (owner thread only).
  std::unique_ptr<uint8_t[]> rx_buf_;
  size_t rx_begin_ = 0, rx_end_ = 0;  // unparsed bytes in rx_buf_
  size_t lookahead_ = kRxBuffer;      // bytes to read beyond the current need
  RxState state_ = RxState::kHeader;
  FrameHeader cur_{};                 // header of the frame being received
  uint8_t* dst_ = nullptr;            // where its payload goes
  bool via_buffer_ = false;           // it lands in a file: read through rx_buf_
  uint32_t need_ = 0, got_ = 0;       // payload bytes in total / received
  std::vector<uint8_t> rx_control_;   // non-page payloads (control tier, may grow)
};

}  // namespace tern::detail
