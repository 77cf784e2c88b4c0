#include "dataplane/expected_guest.h"

#include <unistd.h>

#include <string>
#include <utility>

namespace tern {
namespace {

std::string mib(uint64_t bytes) {
  return std::to_string(bytes >> 20) + " MiB" + (bytes % (1u << 20) ? " (+" +
         std::to_string(bytes % (1u << 20)) + " bytes)" : "");
}

}  // namespace

uint64_t host_memory_bytes() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), size = ::sysconf(_SC_PAGESIZE);
  return pages > 0 && size > 0 ? static_cast<uint64_t>(pages) * static_cast<uint64_t>(size) : 0;
}

Status check_announced_layout(const Layout& announced, const ExpectedGuest& expected) {
  const size_t n = announced.blocks.size();
  if (n == 0 || n > kMaxLayoutBlocks)
    return Status(Code::kInvalidArgument, "the source announces " + std::to_string(n) +
                                              " RAM blocks (a guest has 1.." +
                                              std::to_string(kMaxLayoutBlocks) + ")");
  uint64_t total = 0;
  for (const BlockInfo& b : announced.blocks) {
    if (b.size == 0 || b.size > (uint64_t{1} << 62) - total)
      return Status(Code::kInvalidArgument, "the source announces block '" + b.name +
                                                "' of " + std::to_string(b.size) + " bytes");
    total += b.size;
  }
  const std::string what = "the source announces " + mib(total) + " of guest RAM in " +
                           std::to_string(n) + (n == 1 ? " block" : " blocks");
  if (expected.ram_bytes != 0 && total != expected.ram_bytes)
    return Status(Code::kInvalidArgument,
                  what + "; this destination expects " + mib(expected.ram_bytes) +
                      " (ternd --expect-ram): refused, nothing was allocated");
  if (expected.ram_bytes == 0 && expected.max_ram_bytes != 0 && total > expected.max_ram_bytes)
    return Status(Code::kInvalidArgument,
                  what + ", more than the " + mib(expected.max_ram_bytes) +
                      " this destination accepts (its memory; ternd --expect-ram sets the "
                      "exact size): refused, nothing was allocated");
  return Status::ok();
}

GuestFactory expecting(GuestFactory inner, ExpectedGuest expected) {
  return [inner = std::move(inner), expected](const Layout& l) -> Result<std::unique_ptr<Guest>> {
    if (Status s = check_announced_layout(l, expected); !s.is_ok()) return s;
    return inner(l);
  };
}

}  // namespace tern
