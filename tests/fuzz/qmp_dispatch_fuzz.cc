// libFuzzer target: command dispatch. The input is a QMP stream; every value that frames and
// parses is dispatched to the real command table over the test double of MigrationHost (the
// same one the unit tests use), and every reply is serialised as the server sends it. Nothing
// may throw, crash or produce a reply that is not {"return"} or {"error"}.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "control/qmp_commands.h"
#include "control/qmp_stream.h"
#include "tests/control/host_double.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  using namespace tern::control;
  HostDouble host(size > 0 && (data[0] & 1) ? Role::kDestination : Role::kSource);
  QmpCommands commands(host, MigrationParameters{}, [] {});
  JsonStreamReader reader;
  std::vector<StreamItem> items;
  reader.feed(std::string_view(reinterpret_cast<const char*>(data), size), items);
  for (const StreamItem& item : items) {
    if (!item.ok) continue;
    std::optional<Json> id;
    Result<Request> r = parse_request(item.text, &id);
    if (!r) continue;
    Json reply = commands.dispatch(*r);
    if (!reply.is_object() || (reply.contains("return") == reply.contains("error"))) std::abort();
    (void)to_wire(reply);
  }
  return 0;
}
