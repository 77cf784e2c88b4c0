#include "dataplane/toolkit/hello.h"

#include <poll.h>

#include <cstring>
#include <thread>

#include "dataplane/toolkit/channel_auth.h"
#include "dataplane/toolkit/channel_tls.h"
#include "dataplane/toolkit/hello_transport.h"

namespace tern::toolkit {

Status timeout_status(const std::string& what, std::chrono::milliseconds timeout) {
  return Status(Code::kTimeout, what + ": nothing within " + std::to_string(timeout.count()) +
                                    " ms");
}

int remaining_ms(Clock::time_point deadline) {
  auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
  if (left.count() <= 0) return 0;
  return left.count() > 1000000 ? 1000000 : static_cast<int>(left.count());
}

void wait_for_channels(std::vector<pollfd>& fds, bool nap_short, Clock::time_point deadline) {
  ::poll(fds.data(), fds.size(), nap_short ? 1 : std::min(remaining_ms(deadline), 100));
}

Status send_hello(RawChannel& ch, const HelloPayload& hello, Clock::time_point deadline) {
  TxFrame f{make_header(FrameType::kHello, 0, 0, sizeof(HelloPayload), 0, 0,
                        hello.channel_index),
            &hello};
  ch.set_index(hello.channel_index);
  while (ch.post(&f, 1) != 1) {
    if (!ch.error().is_ok()) return ch.error();
    if (Clock::now() >= deadline)
      return Status(Code::kTimeout, "sending the hello of channel " +
                                        std::to_string(hello.channel_index) + ": no room");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  ch.hide_tx_completions(1);
  // A fresh connection has an empty send buffer, so this loop ends at once in practice.
  while (true) {
    if (!ch.flush()) return ch.error();
    if (ch.tx_pending() == 0) return Status::ok();
    if (Clock::now() >= deadline)
      return Status(Code::kTimeout, "sending the hello of channel " +
                                        std::to_string(hello.channel_index) +
                                        ": the peer does not read");
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
}

Result<HelloPayload> receive_hello(RawChannel& ch, Clock::time_point deadline) {
  RxFrame f;
  while (ch.poll_rx(&f, 1) == 0) {
    if (!ch.error().is_ok()) return ch.error();
    int ms = remaining_ms(deadline);
    if (ms == 0) return Status(Code::kTimeout, "a channel connected but sent no hello in time");
    pollfd pfd{ch.wait_fd(), POLLIN, 0};
    ::poll(&pfd, 1, ms);
  }
  if (static_cast<FrameType>(f.hdr.type) != FrameType::kHello || f.data == nullptr)
    return Status(Code::kProtocol, "first frame of a channel is of type " +
                                       std::to_string(f.hdr.type) + ", not a hello");
  HelloPayload h;
  std::memcpy(&h, f.data, sizeof(h));
  if (f.hdr.channel != h.channel_index)
    return Status(Code::kProtocol, "hello header says channel " + std::to_string(f.hdr.channel) +
                                       " but its payload says " +
                                       std::to_string(h.channel_index));
  return h;
}

Status HelloAssembler::add(std::unique_ptr<RawChannel> ch, const HelloPayload& h) {
  if (count_ == 0) {
    if (h.channel_count < 3 || h.channel_count > kMaxChannels)
      return Status(Code::kProtocol, "hello announces channel_count " +
                                         std::to_string(h.channel_count) + " (must be 3.." +
                                         std::to_string(kMaxChannels) + ")");
    session_ = h.session_id;
    count_ = h.channel_count;
    slots_.resize(count_);
  }
  if (h.session_id != session_)
    return Status(Code::kProtocol, "hello of channel " + std::to_string(h.channel_index) +
                                       " has session_id " + std::to_string(h.session_id) +
                                       " but this session is " + std::to_string(session_));
  if (h.channel_count != count_)
    return Status(Code::kProtocol, "hello of channel " + std::to_string(h.channel_index) +
                                       " has channel_count " + std::to_string(h.channel_count) +
                                       " but the first hello said " + std::to_string(count_));
  if (h.channel_index >= count_)
    return Status(Code::kProtocol, "hello has channel_index " + std::to_string(h.channel_index) +
                                       " outside channel_count " + std::to_string(count_));
  if (slots_[h.channel_index])
    return Status(Code::kProtocol,
                  "two hellos for channel_index " + std::to_string(h.channel_index));
  ch->set_index(h.channel_index);
  ch->open_control_limit();  // the hello exchange (and any handshake) is over
  slots_[h.channel_index] = std::move(ch);
  ++have_;
  return Status::ok();
}

std::string HelloAssembler::progress() const {
  if (count_ == 0) return "no channel";
  return std::to_string(have_) + " of " + std::to_string(count_) + " channels";
}

ChannelSet HelloAssembler::take() {
  ChannelSet out;
  out.reserve(slots_.size());
  for (auto& s : slots_) out.push_back(std::move(s));
  slots_.clear();
  count_ = have_ = 0;
  return out;
}

Status check_channel_count(uint32_t count) {
  if (count < 3 || count > kMaxChannels)
    return Status(Code::kInvalidArgument, "channel count " + std::to_string(count) +
                                              " (need 3.." + std::to_string(kMaxChannels) + ")");
  return Status::ok();
}

std::vector<HelloPayload> standard_hellos(uint32_t count, uint64_t session_id) {
  std::vector<HelloPayload> v(count);
  for (uint32_t i = 0; i < count; ++i) v[i] = {i, count, session_id};
  return v;
}

Result<ChannelSet> HelloTransport::connect(const std::string& address, uint32_t count,
                                           uint64_t session_id,
                                           std::chrono::milliseconds timeout) {
  if (Status s = check_channel_count(count); !s.is_ok()) return s;
  const auto deadline = Clock::now() + timeout;
  const std::vector<HelloPayload> hellos = standard_hellos(count, session_id);
  auto set = connect_with_hellos(address, hellos, timeout);
  if (!set) return set;
  std::vector<RawChannel*> raw;
  for (auto& ch : *set) {
    auto* r = dynamic_cast<RawChannel*>(ch.get());
    if (r == nullptr)
      return Status(Code::kInternal, std::string(name()) + ": a channel is not a RawChannel");
    raw.push_back(r);
  }
  if (frame_tls_) {
    auto keys = tls_handshake_channels(raw, hellos, frame_tls_, tls_default_host(address),
                                       peer_key_.get(), deadline);
    if (!keys) return keys.status();
    std::vector<const PeerKey*> each;
    for (const PeerKey& k : *keys) each.push_back(&k);
    // In TLS 1.3 the client is done before the server looked at its certificate: a refusal
    // shows here, as an alert or as a channel the destination dropped.
    if (Status s = authenticate_channels(raw, hellos, each, deadline); !s.is_ok())
      return s.code() != Code::kIo
                 ? s
                 : Status(s.code(), s.message() + " (after the TLS handshake: did the "
                                                  "destination refuse this source's "
                                                  "certificate? its log says why)");
  } else if (peer_key_) {
    if (Status s = authenticate_channels(raw, hellos, *peer_key_, deadline); !s.is_ok()) return s;
  }
  for (RawChannel* r : raw) r->open_control_limit();
  return set;
}

std::string HelloTransport::encryption() const {
  return frame_tls_ ? kFrameTlsEncryption : "";
}

}  // namespace tern::toolkit
