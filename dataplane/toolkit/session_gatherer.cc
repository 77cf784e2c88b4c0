#include "dataplane/toolkit/session_gatherer.h"

#include <algorithm>
#include <cstdio>

namespace tern::toolkit {
namespace {

std::string hex(uint64_t v) {
  char buf[24];
  std::snprintf(buf, sizeof(buf), "%#llx", static_cast<unsigned long long>(v));
  return buf;
}

}  // namespace

void SessionGatherer::reject(Status s) {
  if (rejected_.size() < limits_.max_rejected)
    rejected_.push_back(std::move(s));
  else
    ++rejected_dropped_;
}

void SessionGatherer::add_connection(std::unique_ptr<RawChannel> ch, std::string peer) {
  while (!waiting_.empty() && waiting_.size() >= limits_.max_waiting) {
    reject(Status(Code::kUnavailable, "connection from " + waiting_.front().peer +
                                          " dropped before its hello: " +
                                          std::to_string(limits_.max_waiting) +
                                          " connections were waiting to say hello"));
    waiting_.pop_front();
  }
  waiting_.push_back({std::move(ch), std::move(peer), Clock::now() + limits_.hello_timeout});
}

void SessionGatherer::file(Waiter w, const HelloPayload& hello) {
  auto it = sessions_.find(hello.session_id);
  if (it == sessions_.end()) {
    if (sessions_.size() >= limits_.max_sessions) {
      auto oldest = std::min_element(sessions_.begin(), sessions_.end(), [](auto& a, auto& b) {
        return a.second.deadline < b.second.deadline;
      });
      reject(Status(Code::kUnavailable,
                    "session " + hex(oldest->first) + " dropped with " +
                        oldest->second.set.progress() + ": " +
                        std::to_string(limits_.max_sessions) + " sessions were being gathered"));
      sessions_.erase(oldest);
    }
    it = sessions_.emplace(hello.session_id, Gathering{{}, Clock::now() + limits_.session_timeout})
             .first;
  }
  if (Status s = it->second.set.add(std::move(w.ch), hello); !s.is_ok()) {
    reject(Status(s.code(), "connection from " + w.peer + " dropped: " + s.message()));
    if (it->second.set.empty()) sessions_.erase(it);
    return;
  }
  if (it->second.set.complete()) {
    complete_.push_back(it->second.set.take());
    sessions_.erase(it);
  }
}

Result<bool> SessionGatherer::advance(Waiter& w) {
  if (!w.hello) {
    auto hello = receive_hello(*w.ch, Clock::time_point{});  // one look, no wait
    if (!hello && hello.status().code() == Code::kTimeout && w.ch->error().is_ok()) return false;
    if (!hello) return hello.status();
    w.hello = *hello;
    if (tls_) {
      auto t = FrameTls::server(tls_, *hello);
      if (!t) return Status(t.status().code(), "TLS: " + t.status().message());
      w.tls = std::move(*t);
    } else if (!key_) {
      return true;
    } else {
      w.auth = std::make_unique<AuthResponder>(key_, *hello);
    }
  }
  if (!w.auth) {  // x509 first
    auto shaken = w.tls->poll(*w.ch);
    if (!shaken) return Status(shaken.status().code(), "x509: " + shaken.status().message());
    if (!*shaken) return false;
    auto k = w.tls->channel_key(key_.get());
    if (!k) return k.status();
    w.auth = std::make_unique<AuthResponder>(std::make_shared<const PeerKey>(std::move(*k)),
                                             *w.hello);
  }
  auto authenticated = w.auth->poll(*w.ch);
  if (!authenticated)
    return Status(authenticated.status().code(),
                  "not authenticated: " + authenticated.status().message());
  return *authenticated;
}

bool SessionGatherer::poll() {
  bool changed = false;
  const auto now = Clock::now();
  for (size_t i = 0; i < waiting_.size();) {
    Waiter& w = waiting_[i];
    auto filed = advance(w);
    if (filed && !*filed) {
      if (now < w.deadline) {
        ++i;
        continue;
      }
      reject(Status(Code::kTimeout, "connection from " + w.peer + " dropped: " +
                                        (w.hello ? "no handshake" : "no hello") + " within " +
                                        std::to_string(limits_.hello_timeout.count()) + " ms"));
    } else if (!filed) {
      reject(Status(filed.status().code(),
                    "connection from " + w.peer + " dropped: " + filed.status().message()));
    } else {
      Waiter taken = std::move(w);
      waiting_.erase(waiting_.begin() + static_cast<long>(i));
      const HelloPayload hello = *taken.hello;
      file(std::move(taken), hello);
      changed = true;
      continue;
    }
    waiting_.erase(waiting_.begin() + static_cast<long>(i));
    changed = true;
  }
  for (auto it = sessions_.begin(); it != sessions_.end();) {
    if (now < it->second.deadline) {
      ++it;
      continue;
    }
    reject(Status(Code::kTimeout, "session " + hex(it->first) + " dropped with " +
                                      it->second.set.progress() + " after " +
                                      std::to_string(limits_.session_timeout.count()) + " ms"));
    it = sessions_.erase(it);
    changed = true;
  }
  return changed;
}

std::optional<ChannelSet> SessionGatherer::take_complete() {
  if (complete_.empty()) return std::nullopt;
  ChannelSet out = std::move(complete_.front());
  complete_.pop_front();
  return out;
}

std::vector<int> SessionGatherer::wait_fds() const {
  std::vector<int> fds;
  for (const Waiter& w : waiting_)
    if (int fd = w.ch->wait_fd(); fd >= 0) fds.push_back(fd);
  return fds;
}

Clock::time_point SessionGatherer::next_deadline() const {
  Clock::time_point t = Clock::time_point::max();
  for (const Waiter& w : waiting_) t = std::min(t, w.deadline);
  for (const auto& [id, g] : sessions_) t = std::min(t, g.deadline);
  return t;
}

std::vector<Status> SessionGatherer::take_rejected() {
  std::vector<Status> out = std::move(rejected_);
  rejected_.clear();
  if (rejected_dropped_) {
    out.push_back(Status(Code::kUnavailable, std::to_string(rejected_dropped_) +
                                                 " more connections were dropped"));
    rejected_dropped_ = 0;
  }
  return out;
}

std::string SessionGatherer::progress() const {
  std::string s;
  if (!waiting_.empty())
    s = "waiting for " + std::to_string(waiting_.size()) +
        (waiting_.size() == 1 ? " hello" : " hellos");
  for (const auto& [id, g] : sessions_) {
    if (!s.empty()) s += "; ";
    s += "session " + hex(id) + ": " + g.set.progress();
  }
  return s.empty() ? "no channel" : s;
}

}  // namespace tern::toolkit
