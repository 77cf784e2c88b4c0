#include "dataplane/transport/loopback.h"

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <unordered_map>

#include "dataplane/toolkit/hello.h"
#include "dataplane/transport/detail/loopback_channel.h"

namespace tern {
namespace detail {

// Channels a connector handed over, waiting for accept().
struct LoopbackListener {
  std::mutex mu;
  std::condition_variable cv;
  std::deque<std::unique_ptr<LoopbackChannel>> backlog;  // guarded by mu
  bool closed = false;                                   // guarded by mu
};

namespace {

// The names loopback listeners are reachable by: a tiny in-process network namespace.
// A justified singleton: two Transports created independently through the registry (say a
// ternd hosting both ends, or a test) must find each other from a URI alone, exactly as a tcp
// source finds its destination through the kernel's port table; there is no object both could
// be handed. It holds only names, is guarded by its own mutex, and is never destroyed (so no
// static destruction order problem at exit).
class Rendezvous {
 public:
  static Rendezvous& instance() {
    static auto* table = new Rendezvous;
    return *table;
  }
  bool bind(const std::string& name, std::shared_ptr<LoopbackListener> l) {
    std::lock_guard<std::mutex> lock(mu_);
    return names_.emplace(name, std::move(l)).second;
  }
  void unbind(const std::string& name, const LoopbackListener* l) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(name);
    if (it != names_.end() && it->second.get() == l) names_.erase(it);
  }
  std::shared_ptr<LoopbackListener> find(const std::string& name) {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = names_.find(name);
    return it == names_.end() ? nullptr : it->second;
  }

 private:
  std::mutex mu_;
  std::unordered_map<std::string, std::shared_ptr<LoopbackListener>> names_;
};

std::string name_of(const std::string& address) {
  return address.empty() ? "default" : address;
}

}  // namespace
}  // namespace detail

LoopbackTransport::~LoopbackTransport() {
  if (!listener_) return;
  detail::Rendezvous::instance().unbind(listen_name_, listener_.get());
  std::deque<std::unique_ptr<detail::LoopbackChannel>> drop;
  {
    std::lock_guard<std::mutex> lock(listener_->mu);
    listener_->closed = true;
    drop.swap(listener_->backlog);
  }
}

Result<std::string> LoopbackTransport::listen(const std::string& address) {
  if (listener_) return Status(Code::kInvalidArgument, "loopback: already listening on '" +
                                                           listen_name_ + "'");
  if (address.find(':') != std::string::npos)
    return Status(Code::kInvalidArgument,
                  "loopback name '" + address + "' contains ':' (use loopback:NAME)");
  std::string name = detail::name_of(address);
  auto l = std::make_shared<detail::LoopbackListener>();
  if (!detail::Rendezvous::instance().bind(name, l))
    return Status(Code::kUnavailable, "loopback name '" + name + "' is already listened on");
  listener_ = std::move(l);
  listen_name_ = name;
  return "loopback:" + name;
}

Result<ChannelSet> LoopbackTransport::accept(std::chrono::milliseconds timeout) {
  if (!listener_) return Status(Code::kInvalidArgument, "loopback: accept() before listen()");
  const auto deadline = toolkit::Clock::now() + timeout;
  gatherer_.set_peer_key(peer_key_);
  gatherer_.set_tls(frame_tls());
  gatherer_.set_hello_timeout(handshake_timeout_);
  while (true) {
    std::deque<std::unique_ptr<detail::LoopbackChannel>> fresh;
    {
      std::lock_guard<std::mutex> lock(listener_->mu);
      fresh.swap(listener_->backlog);
    }
    for (auto& ch : fresh)
      gatherer_.add_connection(std::move(ch), "a loopback peer on '" + listen_name_ + "'");
    gatherer_.poll();
    if (auto set = gatherer_.take_complete()) return std::move(*set);
    if (toolkit::Clock::now() >= deadline)
      return toolkit::timeout_status(
          "loopback accept on '" + listen_name_ + "' (have " + gatherer_.progress() + ")",
          timeout);
    // New connections wake the listener; hellos of waiting ones are looked at every 10 ms.
    auto until = std::min(deadline, gatherer_.next_deadline());
    if (gatherer_.waiting()) until = std::min(until, toolkit::Clock::now() + std::chrono::milliseconds(10));
    std::unique_lock<std::mutex> lock(listener_->mu);
    listener_->cv.wait_until(lock, until, [&] { return !listener_->backlog.empty(); });
  }
}

Result<ChannelSet> LoopbackTransport::connect_with_hellos(
    const std::string& address, const std::vector<HelloPayload>& hellos,
    std::chrono::milliseconds timeout) {
  const auto deadline = toolkit::Clock::now() + timeout;
  if (address.find(':') != std::string::npos)
    return Status(Code::kInvalidArgument,
                  "loopback name '" + address + "' contains ':' (use loopback:NAME)");
  const std::string name = detail::name_of(address);
  auto l = detail::Rendezvous::instance().find(name);
  if (!l)
    return Status(Code::kUnavailable, "no loopback listener named '" + name +
                                          "' (start the destination first)");
  ChannelSet out;
  for (const HelloPayload& h : hellos) {
    auto pair = detail::make_loopback_pair();
    if (!pair) return pair.status();
    auto& [near, far] = *pair;
    if (Status s = toolkit::send_hello(*near, h, deadline); !s.is_ok()) return s;
    {
      std::lock_guard<std::mutex> lock(l->mu);
      if (l->closed)
        return Status(Code::kUnavailable, "loopback listener '" + name + "' closed");
      l->backlog.push_back(std::move(far));
    }
    l->cv.notify_all();
    out.push_back(std::move(near));
  }
  return out;
}

TransportRegistration loopback_transport_registration() {
  return {"loopback", [] { return std::unique_ptr<Transport>(new LoopbackTransport()); }, {}};
}

}  // namespace tern
