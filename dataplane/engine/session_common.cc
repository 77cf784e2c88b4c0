#include "dataplane/engine/session_common.h"

#include <algorithm>
#include <thread>

#include "dataplane/worker.h"

namespace tern::engine {

void StatusBoard::set(MigrationStatus s, const std::string& detail) {
  std::vector<StatusCallback> cbs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (status_ == s) return;
    if (is_terminal(status_)) return;  // terminal states are final
    status_ = s;
    // A paused migration says why its link broke until it runs again.
    if (s == MigrationStatus::kFailed || s == MigrationStatus::kPostcopyPaused)
      error_ = detail;
    else
      error_.clear();
    cbs = callbacks_;
  }
  cv_.notify_all();
  for (auto& cb : cbs) cb(s, detail);
}

void StatusBoard::restart(MigrationStatus s) {
  std::vector<StatusCallback> cbs;
  {
    std::lock_guard<std::mutex> lock(mu_);
    status_ = s;
    error_.clear();
    cbs = callbacks_;
  }
  cv_.notify_all();
  for (auto& cb : cbs) cb(s, "");
}

MigrationStatus StatusBoard::get() const {
  std::lock_guard<std::mutex> lock(mu_);
  return status_;
}

std::string StatusBoard::error() const {
  std::lock_guard<std::mutex> lock(mu_);
  return error_;
}

MigrationStatus StatusBoard::wait(std::chrono::milliseconds timeout) const {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [&] { return is_terminal(status_); });
  return status_;
}

void StatusBoard::on_status(StatusCallback cb) {
  std::lock_guard<std::mutex> lock(mu_);
  callbacks_.push_back(std::move(cb));
}

Result<OpenedTransport> open_transport(const std::string& uri, const MigrationParameters& params) {
  auto parsed = parse_uri(uri);
  if (!parsed) return parsed.status();
  auto transport = create_transport(parsed->transport);
  if (!transport) return transport.status();
  (*transport)->set_peer_key(params.peer_key);
  (*transport)->set_handshake_timeout(params.connect_timeout);
  auto tls = resolve_tls(params.tls, params.tls_catalog.get());
  if (!tls) return tls.status();
  if (Status s = (*transport)->set_tls(std::move(*tls)); !s.is_ok()) return s;
  return OpenedTransport{std::move(*transport), parsed->transport, parsed->address};
}

uint32_t worker_count(const MigrationParameters& p) {
  if (p.workers) return p.workers;
  uint32_t cores = std::max(1u, std::thread::hardware_concurrency());
  return std::max(1u, std::min(p.multifd_channels, cores));
}

std::vector<int> worker_cpus(const MigrationParameters& p, int n, const Transport& t) {
  if (!p.pin_workers) return std::vector<int>(n, -1);
  return choose_worker_cpus(n, t.device_pci());
}

}  // namespace tern::engine
