#include "dataplane/engine/control_link.h"

#include <poll.h>

#include <thread>

namespace tern::engine {

ControlLink::ControlLink(Channel* channel, LinkSide side) : channel_(channel) {
  channel_->set_landing(&no_pages_);
  if (const ChannelKeys* keys = channel_->keys()) {
    sealer_ = std::make_unique<FrameSealer>(keys->send);
    opener_ = std::make_unique<FrameOpener>(keys->recv);
    tamper_ = take_control_tamper(side);
  }
}

bool ControlLink::next_frame(RxFrame* f) {
  if (replay_due_) {  // replay_ stays alive: f->data points into it until the next call
    f->hdr = replay_->first;
    f->data = replay_->second.data();
    replay_due_ = false;
    return true;
  }
  const size_t n = channel_->poll_rx(f, 1);
  // Keeps any partially written message moving. After the read: a flush that finds the peer
  // gone fails the channel, and a failed channel delivers nothing more, so the last message
  // a closing peer sent (its kError or kCancel) would be lost.
  channel_->flush();
  if (n != 1) return false;
  if (tamper_.action == ControlTamper::Action::kNone || ++received_ != tamper_.frame) return true;
  using Action = ControlTamper::Action;
  switch (tamper_.action) {
    case Action::kFlip:
      if (f->data && f->hdr.length) f->data[f->hdr.length / 2] ^= 0xff;
      break;
    case Action::kReplay:
      replay_.emplace(f->hdr,
                      std::vector<uint8_t>(f->data, f->data + (f->data ? f->hdr.length : 0)));
      replay_due_ = true;
      break;
    case Action::kDrop:
      return next_frame(f);
    case Action::kNone:
      break;
  }
  return true;
}

const Status& ControlLink::error() const {
  return error_.is_ok() ? channel_->error() : error_;
}

Status ControlLink::send(ControlType type, uint32_t round, const std::vector<uint8_t>& payload,
                         std::chrono::milliseconds timeout) {
  TxFrame f{make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(payload.size()),
                        static_cast<uint32_t>(type), round, channel_->index()),
            payload.empty() ? nullptr : payload.data()};
  std::vector<uint8_t> sealed;  // post() copies a control payload: it may go after the call
  if (sealer_) {
    if (Status s = sealer_->seal(f.hdr, payload.data(), payload.size(), &f.hdr, &sealed);
        !s.is_ok())
      return s;
    f.payload = sealed.data();
  }
  auto deadline = std::chrono::steady_clock::now() + timeout;
  while (channel_->post(&f, 1) != 1) {
    if (!channel_->error().is_ok()) return channel_->error();
    if (!channel_->flush()) return channel_->error();
    channel_->poll_tx();
    if (std::chrono::steady_clock::now() > deadline) {
      if (sealer_) sealer_->unseal_last();  // never posted: the next message takes its number
      return Status(Code::kTimeout, "control channel: peer is not reading");
    }
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  while (channel_->tx_pending()) {
    if (!channel_->flush()) return channel_->error();
    channel_->poll_tx();
    if (!channel_->tx_pending()) break;
    if (std::chrono::steady_clock::now() > deadline)
      return Status(Code::kTimeout, "control channel: peer is not reading");
    std::this_thread::sleep_for(std::chrono::microseconds(100));
  }
  channel_->poll_tx();
  return Status::ok();
}

std::optional<ControlMessage> ControlLink::poll() {
  while (error_.is_ok()) {
    RxFrame f;
    if (!next_frame(&f)) return std::nullopt;
    if (static_cast<FrameType>(f.hdr.type) != FrameType::kControl) {
      error_ = Status(Code::kProtocol, "frame type " + std::to_string(f.hdr.type) +
                                           " on the control channel");
      return std::nullopt;
    }
    ControlMessage m{static_cast<ControlType>(f.hdr.flags), f.hdr.round, {}};
    if (opener_) {
      auto inner = opener_->open(f.hdr, f.data, f.data ? f.hdr.length : 0, &m.payload);
      if (!inner) {
        error_ = inner.status();
        return std::nullopt;
      }
      m.type = static_cast<ControlType>(inner->flags);
      m.round = inner->round;
    } else if (f.hdr.length && f.data) {
      m.payload.assign(f.data, f.data + f.hdr.length);
    }
    last_rx_ = std::chrono::steady_clock::now();
    if (m.type == ControlType::kKeepalive) continue;
    return m;
  }
  return std::nullopt;
}

void ControlLink::enable_keepalive(std::chrono::milliseconds interval,
                                   std::chrono::milliseconds timeout) {
  keepalive_on_ = true;
  keepalive_interval_ = interval;
  keepalive_timeout_ = timeout;
  last_rx_ = last_tx_ = std::chrono::steady_clock::now();
}

Status ControlLink::keepalive() {
  if (!keepalive_on_ || !error().is_ok()) return error();
  const auto now = std::chrono::steady_clock::now();
  if (now - last_rx_ > keepalive_timeout_) {
    error_ = Status(Code::kTimeout,
                    "the peer said nothing for " +
                        std::to_string(std::chrono::duration_cast<std::chrono::milliseconds>(
                                           now - last_rx_)
                                           .count()) +
                        " ms (timeout " + std::to_string(keepalive_timeout_.count()) + " ms)");
    return error_;
  }
  if (now - last_tx_ >= keepalive_interval_) {
    last_tx_ = now;
    // A peer that stopped reading fills the window: that is the silence above, not an error.
    Status s = send(ControlType::kKeepalive, 0, {}, std::chrono::milliseconds(1));
    if (!s.is_ok() && s.code() != Code::kTimeout) return s;
  }
  return Status::ok();
}

void ControlLink::wait(std::chrono::milliseconds timeout) {
  int fd = channel_->wait_fd();
  if (fd < 0) {
    std::this_thread::sleep_for(std::min(timeout, std::chrono::milliseconds(1)));
    return;
  }
  pollfd p{fd, POLLIN, 0};
  ::poll(&p, 1, static_cast<int>(timeout.count()));
}

}  // namespace tern::engine
