// QMP messages shared by ternd and ternctl (QEMU docs/interop/qmp-spec.rst). The server greets
// with {"QMP": {"version": ..., "capabilities": []}}; a client sends {"execute": NAME,
// "arguments": {...}, "id": ANY} and gets {"return": VALUE, "id": ANY} or {"error": {"class":
// "GenericError", "desc": TEXT}, "id": ANY}; events are {"event": NAME, "data": {...},
// "timestamp": {"seconds", "microseconds"}}. Input framing is in qmp_stream.h; every message
// the server sends ends in CRLF, as QEMU's do.
#pragma once

#include <nlohmann/json.hpp>
#include <optional>
#include <string>

#include "dataplane/status.h"

namespace tern::control {

using Json = nlohmann::json;

// The version ternd reports in the greeting and query-version ("package": "tern").
inline constexpr int kVersionMajor = 0, kVersionMinor = 1, kVersionMicro = 0;

struct Request {
  std::string execute;
  Json arguments = Json::object();
  std::optional<Json> id;
};

// Greeting sent on connect: {"QMP": {"version": {...}, "capabilities": []}} and nothing else
// (the spec's members only; "oob" is not offered). The role is in query-guest.
Json make_greeting();
// {"qemu": {"major", "minor", "micro"}, "package": "tern"}: the greeting's and query-version's.
Json version_json();
// `msg` as sent on the wire: compact JSON, CRLF. Never throws on invalid UTF-8 in a string
// (replaced by U+FFFD).
std::string to_wire(const Json& msg);
// `value` as compact JSON for an error message: valid UTF-8, at most `max` bytes plus "...".
std::string json_excerpt(const Json& value, size_t max = 80);
Json make_return(const Json& value, const std::optional<Json>& id);
// QMP error classes: "GenericError" for almost everything, "CommandNotFound" for unknown
// commands (as QEMU does).
Json make_error(const std::string& desc, const std::optional<Json>& id,
                const std::string& error_class = "GenericError");
Json make_event(const std::string& name, const Json& data);
// {"seconds": s, "microseconds": us} of the wall clock now.
Json timestamp_now();

// Parses one complete top-level value (from JsonStreamReader, so bounded in size and depth).
// The error names what is wrong ("'arguments' must be an object") and quotes no raw client
// bytes. On error, `id_out` still receives the id if one could be read, so the reply can echo
// it. Never throws.
Result<Request> parse_request(const std::string& text, std::optional<Json>* id_out = nullptr);

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
