// ternd's log: leveled lines on stderr ("ternd source 12:00:01.234 info: ..."). The level is
// set once at startup, before any other thread exists; log() may then be called from any thread.
#pragma once

#include <optional>
#include <string>

namespace tern::control {

enum class LogLevel { kError = 0, kWarn = 1, kInfo = 2, kDebug = 3 };

std::optional<LogLevel> parse_log_level(const std::string& name);
void set_log(LogLevel level, std::string prefix);
void log(LogLevel level, const std::string& message);

}  // namespace tern::control
