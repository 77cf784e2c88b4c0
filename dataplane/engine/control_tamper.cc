#include "dataplane/engine/control_tamper.h"

#include <cstdio>
#include <cstdlib>
#include <mutex>

namespace tern::engine {
namespace {

std::mutex mu;
ControlTamper armed[2];  // by LinkSide
bool env_read = false;

void read_env_locked() {
  if (env_read) return;
  env_read = true;
  const char* text = std::getenv("TERN_TEST_CONTROL_TAMPER");
  if (text == nullptr || *text == '\0') return;
  bool any = true;
  LinkSide side = LinkSide::kSource;
  auto t = parse_control_tamper(text, &any, &side);
  if (!t) {
    std::fprintf(stderr, "TERN_TEST_CONTROL_TAMPER ignored: %s\n",
                 t.status().to_string().c_str());
    return;
  }
  if (any || side == LinkSide::kSource) armed[0] = *t;
  if (any || side == LinkSide::kDestination) armed[1] = *t;
}

}  // namespace

Result<ControlTamper> parse_control_tamper(const std::string& text, bool* any_side,
                                           LinkSide* side) {
  const size_t c1 = text.find(':');
  if (c1 == std::string::npos)
    return Status(Code::kInvalidArgument, "'" + text + "': expected ACTION:N[:SIDE]");
  const std::string action = text.substr(0, c1);
  const size_t c2 = text.find(':', c1 + 1);
  const std::string n = text.substr(c1 + 1, c2 == std::string::npos ? std::string::npos : c2 - c1 - 1);
  const std::string who = c2 == std::string::npos ? "any" : text.substr(c2 + 1);
  ControlTamper t;
  if (action == "flip") t.action = ControlTamper::Action::kFlip;
  else if (action == "replay") t.action = ControlTamper::Action::kReplay;
  else if (action == "drop") t.action = ControlTamper::Action::kDrop;
  else return Status(Code::kInvalidArgument, "action '" + action + "' (flip, replay or drop)");
  char* end = nullptr;
  t.frame = std::strtoull(n.c_str(), &end, 10);
  if (n.empty() || *end != '\0' || t.frame == 0)
    return Status(Code::kInvalidArgument, "frame '" + n + "' (a number from 1)");
  *any_side = who == "any";
  if (who == "source") *side = LinkSide::kSource;
  else if (who == "destination") *side = LinkSide::kDestination;
  else if (!*any_side)
    return Status(Code::kInvalidArgument, "side '" + who + "' (source, destination or any)");
  return t;
}

void arm_control_tamper(const ControlTamper& tamper, LinkSide side) {
  std::lock_guard<std::mutex> lock(mu);
  read_env_locked();
  armed[side == LinkSide::kSource ? 0 : 1] = tamper;
}

ControlTamper take_control_tamper(LinkSide side) {
  std::lock_guard<std::mutex> lock(mu);
  read_env_locked();
  ControlTamper t = armed[side == LinkSide::kSource ? 0 : 1];
  armed[side == LinkSide::kSource ? 0 : 1] = {};
  return t;
}

}  // namespace tern::engine
