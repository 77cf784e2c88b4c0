#include "dataplane/engine/marker_tamper.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace tern::engine {
namespace {

std::mutex mu;
MarkerTamper armed[4];  // by MarkerKind
bool env_read = false;

void read_env_locked() {
  if (env_read) return;
  env_read = true;
  const char* text = std::getenv("TERN_TEST_MARKER_TAMPER");
  if (text == nullptr || *text == '\0') return;
  MarkerKind kind = MarkerKind::kRoundEnd;
  auto t = parse_marker_tamper(text, &kind);
  if (!t) {
    std::fprintf(stderr, "TERN_TEST_MARKER_TAMPER ignored: %s\n", t.status().to_string().c_str());
    return;
  }
  armed[static_cast<int>(kind)] = *t;
}

}  // namespace

Result<MarkerTamper> parse_marker_tamper(const std::string& text, MarkerKind* kind) {
  const size_t colon = text.find(':');
  if (colon == std::string::npos)
    return Status(Code::kInvalidArgument, "'" + text + "': expected ACTION:KIND");
  const std::string action = text.substr(0, colon), what = text.substr(colon + 1);
  MarkerTamper t;
  if (action == "flip") t = MarkerTamper::kFlip;
  else if (action == "replay") t = MarkerTamper::kReplay;
  else return Status(Code::kInvalidArgument, "action '" + action + "' (flip or replay)");
  if (what == "round-end") *kind = MarkerKind::kRoundEnd;
  else if (what == "request") *kind = MarkerKind::kRequest;
  else if (what == "page") *kind = MarkerKind::kPage;
  else if (what == "urgent-page") *kind = MarkerKind::kUrgentPage;
  else return Status(Code::kInvalidArgument,
                     "kind '" + what + "' (round-end, request, page or urgent-page)");
  return t;
}

void arm_marker_tamper(MarkerKind kind, MarkerTamper tamper) {
  std::lock_guard<std::mutex> lock(mu);
  read_env_locked();
  armed[static_cast<int>(kind)] = tamper;
}

MarkerTamper take_marker_tamper(MarkerKind kind) {
  std::lock_guard<std::mutex> lock(mu);
  read_env_locked();
  MarkerTamper t = armed[static_cast<int>(kind)];
  armed[static_cast<int>(kind)] = MarkerTamper::kNone;
  return t;
}

}  // namespace tern::engine
