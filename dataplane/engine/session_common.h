// Pieces both session control threads use: status bookkeeping with waiters and callbacks,
// worker layout, and small helpers.
//
// Threads: StatusBoard methods from any thread.
#pragma once

#include <chrono>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "dataplane/migration.h"
#include "dataplane/transport.h"

namespace tern::engine {

class StatusBoard {
 public:
  void set(MigrationStatus s, const std::string& detail = "");
  // Like set(), but also leaves a terminal status: a re-armed destination's next migration.
  void restart(MigrationStatus s);
  MigrationStatus get() const;
  std::string error() const;
  MigrationStatus wait(std::chrono::milliseconds timeout) const;
  void on_status(StatusCallback cb);

 private:
  mutable std::mutex mu_;
  mutable std::condition_variable cv_;
  MigrationStatus status_ = MigrationStatus::kNone;
  std::string error_;
  std::vector<StatusCallback> callbacks_;
};

// A transport created from a URI's name, with the rest of the URI.
struct OpenedTransport {
  std::unique_ptr<Transport> transport;
  std::string name;     // "tcp", "loopback", ...
  std::string address;  // the URI after "name:"
};
Result<OpenedTransport> open_transport(const std::string& uri, const MigrationParameters& params);

// Worker count for a side: the parameter, else one per bulk channel up to the core count.
uint32_t worker_count(const MigrationParameters& p);

// CPUs for `n` workers: with `pin_workers`, cores near the device the transport's channels use
// (Transport::device_pci; all cores when it names none), else n x -1 (unpinned). Call after
// connect()/accept().
std::vector<int> worker_cpus(const MigrationParameters& p, int n, const Transport& t);

inline double seconds_since(std::chrono::steady_clock::time_point t) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - t).count();
}
inline uint64_t ms_since(std::chrono::steady_clock::time_point t) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::milliseconds>(
                                   std::chrono::steady_clock::now() - t)
                                   .count());
}

}  // namespace tern::engine
