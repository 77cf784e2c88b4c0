#include "control/qmp_protocol.h"

#include <sys/time.h>

#include "control/qmp_stream.h"

namespace tern::control {

Json version_json() {
  return {{"qemu", {{"major", kVersionMajor}, {"minor", kVersionMinor}, {"micro", kVersionMicro}}},
          {"package", "tern"}};
}

Json make_greeting() {
  return {{"QMP", {{"version", version_json()}, {"capabilities", Json::array()}}}};
}

std::string json_excerpt(const Json& value, size_t max) {
  std::string text = value.dump(-1, ' ', false, Json::error_handler_t::replace);
  if (text.size() <= max) return text;
  return utf8_truncate(text, max) + "...";
}

std::string to_wire(const Json& msg) {
  return msg.dump(-1, ' ', false, Json::error_handler_t::replace) + "\r\n";
}

Json make_return(const Json& value, const std::optional<Json>& id) {
  Json j = {{"return", value}};
  if (id) j["id"] = *id;
  return j;
}

Json make_error(const std::string& desc, const std::optional<Json>& id,
                const std::string& error_class) {
  Json j = {{"error", {{"class", error_class}, {"desc", desc}}}};
  if (id) j["id"] = *id;
  return j;
}

Json timestamp_now() {
  timeval tv{};
  gettimeofday(&tv, nullptr);
  return {{"seconds", static_cast<int64_t>(tv.tv_sec)},
          {"microseconds", static_cast<int64_t>(tv.tv_usec)}};
}

Json make_event(const std::string& name, const Json& data) {
  return {{"event", name}, {"data", data}, {"timestamp", timestamp_now()}};
}

namespace {

Result<Request> parse_request_unguarded(const std::string& text, std::optional<Json>* id_out) {
  Json j = Json::parse(text, nullptr, /*allow_exceptions=*/false);
  if (j.is_discarded()) {
    return Status(Code::kInvalidArgument,
                  "JSON parse error, not a valid JSON object: " + sanitize_excerpt(text));
  }
  if (!j.is_object()) {
    return Status(Code::kInvalidArgument, "QMP input must be a JSON object");
  }
  Request r;
  if (j.contains("id")) {
    r.id = j["id"];
    if (id_out) *id_out = r.id;
  }
  if (!j.contains("execute")) {
    return Status(Code::kInvalidArgument, "QMP input lacks member 'execute'");
  }
  if (!j["execute"].is_string()) {
    return Status(Code::kInvalidArgument, "QMP input member 'execute' must be a string");
  }
  r.execute = j["execute"].get<std::string>();
  if (j.contains("arguments")) {
    if (!j["arguments"].is_object()) {
      return Status(Code::kInvalidArgument, "QMP input member 'arguments' must be an object");
    }
    r.arguments = j["arguments"];
  }
  for (const auto& [key, value] : j.items()) {
    (void)value;
    if (key != "execute" && key != "arguments" && key != "id") {
      return Status(Code::kInvalidArgument,
                    "QMP input member '" + utf8_truncate(key, 64) + "' is unexpected");
    }
  }
  return r;
}

}  // namespace

Result<Request> parse_request(const std::string& text, std::optional<Json>* id_out) {
  try {
    return parse_request_unguarded(text, id_out);
  } catch (const std::exception& e) {
    return Status(Code::kInvalidArgument,
                  std::string("JSON parse error, ") + utf8_truncate(e.what(), 200));
  }
}

Result<std::string> ArgReader::string(const char* name) const {
  if (!args_.contains(name)) {
    return Status(Code::kInvalidArgument, std::string("missing argument '") + name + "'");
  }
  if (!args_[name].is_string()) {
    return Status(Code::kInvalidArgument, std::string("argument '") + name +
                                              "' must be a string, got " + json_excerpt(args_[name]));
  }
  return args_[name].get<std::string>();
}

Result<bool> ArgReader::boolean(const char* name, bool fallback) const {
  if (!args_.contains(name)) return fallback;
  if (!args_[name].is_boolean()) {
    return Status(Code::kInvalidArgument, std::string("argument '") + name +
                                              "' must be a boolean, got " + json_excerpt(args_[name]));
  }
  return args_[name].get<bool>();
}

Result<std::optional<uint64_t>> ArgReader::unsigned_number(const char* name, uint64_t max) const {
  if (!args_.contains(name)) return std::optional<uint64_t>();
  const Json& v = args_[name];
  if (!v.is_number_unsigned() && !(v.is_number_integer() && v.get<int64_t>() >= 0))
    return Status(Code::kInvalidArgument, std::string("argument '") + name +
                                              "' must be a non-negative integer, got " + json_excerpt(v));
  if (v.get<uint64_t>() > max)
    return Status(Code::kInvalidArgument, std::string("argument '") + name + "' must be at most " +
                                              std::to_string(max) + ", got " + json_excerpt(v));
  return std::optional<uint64_t>(v.get<uint64_t>());
}

Status ArgReader::only(std::initializer_list<const char*> known) const {
  for (const auto& [key, value] : args_.items()) {
    (void)value;
    bool ok = false;
    for (const char* k : known) ok = ok || key == k;
    if (!ok) {
      std::string list;
      for (const char* k : known) list += (list.empty() ? "" : ", ") + std::string(k);
      return {Code::kInvalidArgument,
              "unknown argument '" + key + "'" +
                  (list.empty() ? " (this command takes none)" : " (known: " + list + ")")};
    }
  }
  return Status::ok();
}

}  // namespace tern::control
