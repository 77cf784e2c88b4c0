#include "control/qmp_names.h"

#include <utility>

namespace tern::control::ext {
namespace {

// Input names of tern 0.1 that are extensions now. Only names a client sends (commands,
// capabilities, parameters): output members are not looked up.
constexpr std::pair<std::string_view, const char*> kRenamed[] = {
    {"query-guest", kQueryGuest},       {"query-transports", kQueryTransports},
    {"query-incoming", kQueryIncoming}, {"x-free-page-hint", kFreePageHint},
    {"x-chunk-size", kChunkSize},       {"x-workers", kWorkers},
    {"x-max-rounds", kMaxRounds},
};

}  // namespace

std::string qmp_name(std::string_view friendly) {
  for (std::string_view name : kAll) {
    if (name.size() == kPrefix.size() + friendly.size() && name.substr(kPrefix.size()) == friendly)
      return std::string(name);
  }
  return std::string(friendly);
}

std::string_view friendly_name(std::string_view name) {
  return name.substr(0, kPrefix.size()) == kPrefix ? name.substr(kPrefix.size()) : name;
}

const char* renamed_from(std::string_view old_name) {
  for (const auto& [old, now] : kRenamed) {
    if (old == old_name) return now;
  }
  return nullptr;
}

std::string renamed_hint(std::string_view old_name) {
  const char* now = renamed_from(old_name);
  return now ? std::string(" (tern's extension is named ") + now + " now)" : std::string();
}

}  // namespace tern::control::ext
