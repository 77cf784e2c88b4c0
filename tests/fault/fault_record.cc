#include "tests/fault/fault_record.h"

#include <cstdlib>
#include <fstream>

#include "control/qmp_protocol.h"

namespace tern::fault {

void record_case(const std::string& case_name, const CaseOutcome& outcome, double seconds,
                 const std::string& failure) {
  const char* path = std::getenv("TERN_FAULT_RECORD");
  if (path == nullptr || *path == '\0') return;
  control::Json j = {{"case", case_name},
                     {"result", failure.empty() ? outcome.result : "test-failed"},
                     {"cause", outcome.cause},
                     {"pages-checked", outcome.pages_checked},
                     {"pages-lost", outcome.pages_lost},
                     {"seconds", seconds}};
  if (outcome.early_failures > 0) {
    j["early-failures"] = outcome.early_failures;
    j["early-cause"] = outcome.early_cause;
  }
  if (!failure.empty()) j["failure"] = failure;
  // One write of the whole line: shards of a soak (TERN_SOAK_JOBS) append to one file.
  std::ofstream(path, std::ios::app) << j.dump() + "\n";
}

}  // namespace tern::fault
