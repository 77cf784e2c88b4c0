// QMP framing shared by ternd and ternctl: one JSON object per line. The server greets with
// {"QMP": {...}}; a client sends {"execute": NAME, "arguments": {...}, "id": ANY} and gets
// {"return": VALUE, "id": ANY} or {"error": {"class": "GenericError", "desc": TEXT}, "id": ANY};
// events are {"event": NAME, "data": {...}, "timestamp": {"seconds", "microseconds"}}.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dataplane/status.h"

namespace tern::control {

using Json = nlohmann::json;

inline constexpr size_t kMaxLineBytes = 1 << 20;  // longer lines close the connection

struct Request {
  std::string execute;
  Json arguments = Json::object();
  std::optional<Json> id;
};

// Greeting sent on connect: {"QMP": {"version": {...}, "capabilities": [], "tern": {role}}}.
Json make_greeting(const std::string& role);
Json make_return(const Json& value, const std::optional<Json>& id);
// QMP error classes: "GenericError" for almost everything, "CommandNotFound" for unknown
// commands (as QEMU does).
Json make_error(const std::string& desc, const std::optional<Json>& id,
                const std::string& error_class = "GenericError");
Json make_event(const std::string& name, const Json& data);
// {"seconds": s, "microseconds": us} of the wall clock now.
Json timestamp_now();

// Parses one request line. The error names what is wrong ("'arguments' must be an object").
// On error, `id_out` still receives the id if one could be read, so the reply can echo it.
Result<Request> parse_request(const std::string& line, std::optional<Json>* id_out = nullptr);

// Typed access to a command's arguments; errors name the argument and the expected type.
class ArgReader {
 public:
  explicit ArgReader(const Json& args) : args_(args) {}
  bool has(const char* name) const { return args_.contains(name); }
  const Json& raw() const { return args_; }
  Result<std::string> string(const char* name) const;
  Result<bool> boolean(const char* name, bool fallback) const;
  // An optional non-negative integer no larger than `max` (empty when absent).
  Result<std::optional<uint64_t>> unsigned_number(const char* name, uint64_t max) const;
  // Fails when an argument outside `known` is present: "unknown argument 'x' (known: a, b)".
  Status only(std::initializer_list<const char*> known) const;

 private:
  const Json& args_;
};

}  // namespace tern::control
