// libFuzzer target: the QMP stream reader. Arbitrary bytes, fed in pieces whose sizes the input
// chooses, must give values that are balanced, within the limits and parseable or refused
// without an exception, and error text that is valid UTF-8 (dump() must not throw on it).
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "control/qmp_protocol.h"
#include "control/qmp_stream.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  using namespace tern::control;
  if (size == 0) return 0;
  // First byte: the piece size the stream is cut into (1..256).
  size_t piece = static_cast<size_t>(data[0]) + 1;
  std::string_view rest(reinterpret_cast<const char*>(data + 1), size - 1);
  JsonStreamReader reader({.max_object_bytes = 4096, .max_depth = 16});
  std::vector<StreamItem> items;
  for (size_t off = 0; off < rest.size(); off += piece) {
    reader.feed(rest.substr(off, piece), items);
    if (reader.pending() > 4096) std::abort();
  }
  for (const StreamItem& item : items) {
    if (!item.ok) {
      (void)to_wire(make_error(item.error, std::nullopt));
      continue;
    }
    if (item.text.size() > 4096) std::abort();
    std::optional<Json> id;
    Result<Request> r = parse_request(item.text, &id);  // must not throw
    Json reply = r ? make_return(r->arguments, r->id) : make_error(r.status().message(), id);
    (void)to_wire(reply);
  }
  // The sanitisers, on the raw bytes.
  Json j = sanitize_excerpt(rest) + utf8_truncate(rest, piece);
  (void)j.dump();
  return 0;
}
