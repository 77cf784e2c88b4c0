// One line of JSON per finished case, appended to the file TERN_FAULT_RECORD names (nothing
// when unset): what scripts/soak.sh counts. Fields: case, result (the CaseOutcome result, or
// "test-failed"), cause, pages-checked, pages-lost, seconds, failure (the first failed
// assertion's message, when the test failed).
#pragma once

#include <string>

#include "tests/fault/fault_runner.h"

namespace tern::fault {

void record_case(const std::string& case_name, const CaseOutcome& outcome, double seconds,
                 const std::string& failure);

}  // namespace tern::fault
