// QMP input framing: QMP is a stream of JSON objects (qmp-spec), not a line protocol. An object
// may span lines or share a line with the next; a client may send one without a trailing
// newline and wait for the reply (QEMU's Python client does). JsonStreamReader cuts the byte
// stream into complete top-level values WITHOUT parsing them: it tracks strings, escapes and
// bracket nesting, checks the size and depth bounds, and rejects bytes that can never be JSON
// outside a string. Only a bounded, balanced text goes on to nlohmann (which recurses).
//
// After an error the reader discards input up to the next newline, so one bad line costs one
// error reply and the commands after it still run.
//
// Threads: one reader per connection, used by one thread. No I/O.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace tern::control {

struct StreamLimits {
  size_t max_object_bytes = 1 << 20;  // one top-level value, whitespace included
  uint32_t max_depth = 64;            // nested objects and arrays
};

// One top-level value or one framing error, in stream order.
struct StreamItem {
  bool ok = false;
  std::string text;   // ok: the value's text (balanced, within the limits)
  std::string error;  // !ok: what was wrong, ASCII only
};

class JsonStreamReader {
 public:
  explicit JsonStreamReader(StreamLimits limits = {}) : limits_(limits) {}

  // Consumes `data` and appends every value or error it completes to `out`. Memory stays
  // bounded by max_object_bytes whatever is fed.
  void feed(std::string_view data, std::vector<StreamItem>& out);
  // Bytes of an incomplete value held (0 between values).
  size_t pending() const { return text_.size(); }

 private:
  void fail(std::string error, std::vector<StreamItem>& out);
  void reset();

  StreamLimits limits_;
  std::string text_;           // the value being read
  std::vector<char> closers_;  // expected closing brackets, innermost last
  bool in_string_ = false;
  bool escape_ = false;
  bool skipping_ = false;  // after an error: drop bytes up to a newline
};

// `text` as printable ASCII for an error message: other bytes as \xNN, at most `max` bytes of
// input shown, "..." when cut. Never splits a character into invalid UTF-8 (it emits none).
std::string sanitize_excerpt(std::string_view text, size_t max = 40);

// `s` cut to at most `max` bytes without splitting a UTF-8 sequence; invalid sequences become
// '?'. The result is always valid UTF-8.
std::string utf8_truncate(std::string_view s, size_t max);

}  // namespace tern::control
