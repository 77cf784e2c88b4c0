#include "control/log.h"

#include <sys/time.h>

#include <cstdio>
#include <ctime>
#include <mutex>

namespace tern::control {
namespace {

LogLevel g_level = LogLevel::kInfo;  // written once at startup (set_log), read-only after
std::string g_prefix = "ternd";
std::mutex g_mu;  // keeps lines from interleaving

const char* level_name(LogLevel l) {
  switch (l) {
    case LogLevel::kError:
      return "error";
    case LogLevel::kWarn:
      return "warn";
    case LogLevel::kInfo:
      return "info";
    case LogLevel::kDebug:
      return "debug";
  }
  return "?";
}

}  // namespace

std::optional<LogLevel> parse_log_level(const std::string& name) {
  for (LogLevel l : {LogLevel::kError, LogLevel::kWarn, LogLevel::kInfo, LogLevel::kDebug}) {
    if (name == level_name(l)) return l;
  }
  return std::nullopt;
}

void set_log(LogLevel level, std::string prefix) {
  g_level = level;
  g_prefix = std::move(prefix);
}

void log(LogLevel level, const std::string& message) {
  if (level > g_level) return;
  timeval tv{};
  gettimeofday(&tv, nullptr);
  tm local{};
  localtime_r(&tv.tv_sec, &local);
  char when[32];
  std::snprintf(when, sizeof when, "%02d:%02d:%02d.%03ld", local.tm_hour, local.tm_min,
                local.tm_sec, static_cast<long>(tv.tv_usec / 1000));
  std::lock_guard<std::mutex> lock(g_mu);
  std::fprintf(stderr, "%s %s %s: %s\n", g_prefix.c_str(), when, level_name(level),
               message.c_str());
  std::fflush(stderr);
}

}  // namespace tern::control
