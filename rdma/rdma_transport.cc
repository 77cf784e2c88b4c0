#include "rdma/rdma_transport.h"

#include <cstdlib>

#include "dataplane/transport/detail/hello.h"
#include "rdma/rdma_channel.h"
#include "rdma/verbs_shim.h"

namespace tern {
namespace {

using tern::detail::Clock;

struct HostPort {
  std::string host, port;
};

// "HOST:PORT" or "[V6]:PORT". Errors name the bad part (kInvalidArgument).
Result<HostPort> split(const std::string& address, bool passive) {
  const auto colon = address.rfind(':');
  if (colon == std::string::npos)
    return Status(Code::kInvalidArgument,
                  "rdma address '" + address + "' has no port (expected HOST:PORT)");
  HostPort hp{address.substr(0, colon), address.substr(colon + 1)};
  if (hp.host.size() >= 2 && hp.host.front() == '[' && hp.host.back() == ']')
    hp.host = hp.host.substr(1, hp.host.size() - 2);
  if (hp.host.empty())
    return Status(Code::kInvalidArgument,
                  "rdma address '" + address + "' has no host (expected HOST:PORT)");
  char* end = nullptr;
  const unsigned long p = hp.port.empty() ? 70000 : std::strtoul(hp.port.c_str(), &end, 10);
  if (hp.port.empty() || *end != '\0' || p > 65535)
    return Status(Code::kInvalidArgument, "rdma port '" + hp.port + "' in '" + address +
                                              "' is not a number 0-65535");
  if (p == 0 && !passive)
    return Status(Code::kInvalidArgument, "rdma port 0 in '" + address +
                                              "': connect needs the destination's real port");
  return hp;
}

}  // namespace

bool rdma_device_present() { return rdma::any_device(nullptr); }

std::string rdma_device_summary() {
  std::string why;
  rdma::any_device(&why);
  return why;
}

RdmaTransport::RdmaTransport()
    : devices_(std::make_unique<rdma::DeviceTable>()),
      memory_(std::make_shared<rdma::MemoryMap>()) {}

RdmaTransport::~RdmaTransport() {
  stop_.store(true);
  if (acceptor_.joinable()) acceptor_.join();
  waiting_.reset();
  set_.reset();
  ready_.clear();
  listener_.reset();
}

Result<std::string> RdmaTransport::listen(const std::string& address) {
  if (listening_) return Status(Code::kInvalidArgument, "rdma: already listening on " + listen_uri_);
  auto hp = split(address, /*passive=*/true);
  if (!hp) return hp.status();
  auto l = rdma::Listener::listen(hp->host, hp->port, rdma::RdmaChannel::kShape);
  if (!l) return l.status();
  listener_ = std::move(*l);
  const bool v6 = hp->host.find(':') != std::string::npos;
  listen_uri_ = "rdma:" + (v6 ? "[" + hp->host + "]" : hp->host) + ":" +
                std::to_string(listener_->port());
  listening_ = true;
  acceptor_ = std::thread([this] { accept_loop(); });
  return listen_uri_;
}

void RdmaTransport::accept_loop() {
  std::vector<std::unique_ptr<rdma::Connection>> got;
  while (!stop_.load()) {
    Status s;
    {
      std::lock_guard<std::mutex> lock(devices_mu_);
      s = listener_->poll(20, *devices_, got);
    }
    std::lock_guard<std::mutex> lock(mu_);
    for (auto& c : got) ready_.push_back(std::move(c));
    got.clear();
    if (!s.is_ok()) {
      acceptor_error_ = s;
      cv_.notify_all();
      return;
    }
    cv_.notify_all();
  }
}

Result<ChannelSet> RdmaTransport::accept(std::chrono::milliseconds timeout) {
  if (!listening_) return Status(Code::kInvalidArgument, "rdma: accept() before listen()");
  const auto deadline = Clock::now() + timeout;
  // Setting up a queue pair takes far longer than a TCP handshake (hundreds of ms under an
  // emulated CPU), so a session often spans several accept() calls: the channels accepted so
  // far, and one still waiting for its hello, are kept across a timeout.
  if (!set_) set_ = std::make_unique<tern::detail::HelloAssembler>();
  auto timed_out = [&] {
    return tern::detail::timeout_status(
        "rdma accept on " + listen_uri_ + " (have " + set_->progress() + ")", timeout);
  };
  while (!set_->complete()) {
    if (!waiting_) {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait_until(lock, deadline, [&] { return !ready_.empty() || !acceptor_error_.is_ok(); });
      if (!acceptor_error_.is_ok()) return acceptor_error_;
      if (ready_.empty()) return timed_out();
      waiting_ = std::make_unique<rdma::RdmaChannel>(std::move(ready_.front()), memory_);
      ready_.pop_front();
    }
    auto hello = tern::detail::receive_hello(*waiting_, deadline);
    if (!hello && hello.status().code() == Code::kTimeout && waiting_->error().is_ok())
      return timed_out();
    if (!hello) {
      waiting_.reset();
      set_.reset();
      return hello.status();
    }
    if (Status s = set_->add(std::move(waiting_), *hello); !s.is_ok()) {
      set_.reset();
      return s;
    }
  }
  ChannelSet out = set_->take();
  set_.reset();
  return out;
}

Result<ChannelSet> RdmaTransport::connect(const std::string& address, uint32_t count,
                                          uint64_t session_id, std::chrono::milliseconds timeout) {
  if (Status s = tern::detail::check_channel_count(count); !s.is_ok()) return s;
  return connect_with_hellos(address, tern::detail::standard_hellos(count, session_id), timeout);
}

Result<ChannelSet> RdmaTransport::connect_with_hellos(const std::string& address,
                                                      const std::vector<HelloPayload>& hellos,
                                                      std::chrono::milliseconds timeout) {
  const auto deadline = Clock::now() + timeout;
  auto hp = split(address, /*passive=*/false);
  if (!hp) return hp.status();
  ChannelSet out;
  for (const HelloPayload& h : hellos) {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    Result<std::unique_ptr<rdma::Connection>> conn = Status(Code::kTimeout, "");
    {
      std::lock_guard<std::mutex> lock(devices_mu_);
      conn = rdma::connect(hp->host, hp->port, rdma::RdmaChannel::kShape, *devices_,
                           std::max(left, std::chrono::milliseconds(1)));
    }
    if (!conn) return conn.status();
    auto ch = std::make_unique<rdma::RdmaChannel>(std::move(*conn), memory_);
    if (!ch->error().is_ok()) return ch->error();
    if (Status s = tern::detail::send_hello(*ch, h, deadline); !s.is_ok()) return s;
    out.push_back(std::move(ch));
  }
  return out;
}

Status RdmaTransport::register_memory(void* addr, size_t len) {
  // Only a source sends from guest RAM; see the header for why a destination registers nothing.
  // Nothing is pinned here: the channels register 64 MiB chunks as they first send from them.
  if (listening_ || len == 0) return Status::ok();
  std::shared_ptr<rdma::ProtectionDomain> pd;
  {
    std::lock_guard<std::mutex> lock(devices_mu_);
    auto first = devices_->first();  // the device the channels connected through
    if (!first) return first.status();
    pd = *first;
  }
  memory_->add(addr, len, [pd](void* a, size_t n) {
    return pd->register_region(a, n, /*remote_write=*/false);
  });
  return Status::ok();
}

}  // namespace tern
