// ternctl watch: the progress bar (and the timed switch to postcopy for `migrate --wait`).
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <iostream>
#include <thread>

#include "control/migration_json.h"
#include "control/progress_rate.h"
#include "control/report.h"
#include "control/ternctl.h"

namespace tern::control {

using Clock = std::chrono::steady_clock;

int watch_migration(QmpClient& client, const WatchOptions& options) {
  const bool tty = isatty(STDOUT_FILENO) && !options.json;
  const double interval = options.interval_s > 0 ? options.interval_s : (tty ? 0.2 : 1.0);
  // With a pending postcopy switch, sample often so the switch follows the end of round 1.
  const double poll_s = options.postcopy_after_s ? std::min(interval, 0.05) : interval;
  const auto start = Clock::now();
  auto last_print = start - std::chrono::hours(1);
  bool switched = false;
  ProgressRate rate;
  size_t last_width = 0;
  std::string status = "none";
  Json qm;
  for (;;) {
    Result<Json> r = client.execute("query-migrate");
    if (!r) {
      if (tty) std::cout << "\n";
      std::cerr << "ternctl: query-migrate: " << r.status().message() << "\n";
      return kExitCommand;
    }
    qm = *r;
    status = qm.value("status", "none");
    auto now = Clock::now();
    double elapsed = std::chrono::duration<double>(now - start).count();

    if (options.postcopy_after_s && !switched && status == "active") {
      uint64_t syncs = qm.contains("ram") ? qm["ram"].value("dirty-sync-count", 0ull) : 0;
      bool round_done = syncs >= 1;  // the engine syncs the dirty log at the end of each round
      if (round_done || elapsed >= *options.postcopy_after_s) {
        switched = true;
        Result<Json> pc = client.execute("migrate-start-postcopy");
        if (tty) std::cout << "\n";
        if (pc) {
          std::cerr << "ternctl: switching to postcopy ("
                    << (round_done ? "first precopy round done" : "time limit reached") << " after "
                    << format_duration_ms(static_cast<uint64_t>(elapsed * 1000)) << ")\n";
        } else {
          std::cerr << "ternctl: migrate-start-postcopy: " << pc.status().message() << "\n";
        }
      }
    }

    Progress p = progress_from(qm);
    rate.add(elapsed, p.remaining, p.transferred, p.bytes_per_second);
    if (p.bytes_per_second <= 0) p.bytes_per_second = rate.send_rate();
    p.work_per_second = rate.work_rate();
    p.eta_ms = rate.eta_ms();

    // A paused postcopy waits for the user (migrate-recover, migrate --resume): stop watching.
    bool done = is_terminal_status(status) || status == "postcopy-paused";
    bool print = done || std::chrono::duration<double>(now - last_print).count() >= interval * 0.95;
    if (!print) {
      std::this_thread::sleep_for(std::chrono::duration<double>(poll_s));
      continue;
    }
    last_print = now;
    if (options.json) {
      std::cout << qm.dump() << "\n" << std::flush;
    } else if (tty) {
      std::string line = progress_line(p);
      std::string pad = line.size() < last_width ? std::string(last_width - line.size(), ' ') : "";
      last_width = line.size();
      std::cout << "\r" << line << pad << std::flush;
      if (done) std::cout << "\n";
    } else {
      std::cout << progress_line(p) << "\n" << std::flush;
    }
    if (done) break;
    std::this_thread::sleep_for(std::chrono::duration<double>(poll_s));
  }
  if (status == "completed") return kExitOk;
  if (!options.json) {
    std::cerr << "ternctl: migration " << status;
    if (qm.contains("error-desc")) std::cerr << ": " << qm["error-desc"].get<std::string>();
    std::cerr << "\n";
    if (status == "postcopy-paused")
      std::cerr << "ternctl: recover with 'ternctl migrate-recover URI' on the destination, then "
                   "'ternctl migrate --resume URI' on the source\n";
  }
  return kExitFailed;
}

}  // namespace tern::control
