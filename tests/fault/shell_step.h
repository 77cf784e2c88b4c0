// One step of a link set-up or teardown: runs `command` through the shell, quietly. On failure
// the first failed command is kept in *error (later failures leave it as it is).
#pragma once

#include <cstdlib>
#include <string>

namespace tern::fault {

inline bool run_shell_step(const std::string& command, std::string* error) {
  if (std::system((command + " >/dev/null 2>&1").c_str()) == 0) return true;
  if (error->empty()) *error = "'" + command + "' failed";
  return false;
}

}  // namespace tern::fault
