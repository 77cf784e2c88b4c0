#include "dataplane/migration.h"

namespace tern {

const char* status_name(MigrationStatus s) {
  switch (s) {
    case MigrationStatus::kNone: return "none";
    case MigrationStatus::kSetup: return "setup";
    case MigrationStatus::kActive: return "active";
    case MigrationStatus::kPostcopyActive: return "postcopy-active";
    case MigrationStatus::kDevice: return "device";
    case MigrationStatus::kCompleted: return "completed";
    case MigrationStatus::kFailed: return "failed";
    case MigrationStatus::kCancelling: return "cancelling";
    case MigrationStatus::kCancelled: return "cancelled";
    case MigrationStatus::kPostcopyPaused: return "postcopy-paused";
    case MigrationStatus::kPostcopyRecover: return "postcopy-recover";
  }
  return "unknown";
}

bool is_terminal(MigrationStatus s) {
  return s == MigrationStatus::kCompleted || s == MigrationStatus::kFailed ||
         s == MigrationStatus::kCancelled;
}

}  // namespace tern
