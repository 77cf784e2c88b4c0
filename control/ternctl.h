// ternctl internals shared by its two files: output mode and the watch loop.
#pragma once

#include <optional>
#include <string>

#include "control/qmp_client.h"

namespace tern::control {

// Process exit codes of ternctl.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailed = 1;   // the migration failed, was cancelled, or mismatched
inline constexpr int kExitUsage = 2;    // bad command line
inline constexpr int kExitCommand = 3;  // ternd refused the command or could not be reached

struct WatchOptions {
  bool json = false;      // one query-migrate JSON per line instead of the bar
  double interval_s = 0;  // 0: 0.2 s on a TTY, 1 s otherwise
  // Switch to postcopy once the first precopy round is done or this many seconds passed.
  std::optional<double> postcopy_after_s;
};

// Follows the migration on `client` until a terminal status. On a TTY the progress bar is
// redrawn in place with '\r'; otherwise one line per second. Returns kExitOk when completed.
int watch_migration(QmpClient& client, const WatchOptions& options);

}  // namespace tern::control
