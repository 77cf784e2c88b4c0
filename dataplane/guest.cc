#include "dataplane/guest.h"

namespace tern {

Layout Guest::layout() const {
  Layout l;
  for (RamBlock* b : ram()) l.blocks.push_back({b->name(), b->size(), b->host_page_size()});
  return l;
}

Status check_free_page_range(const std::vector<RamBlock*>& ram, const Range& r) {
  auto refuse = [&](const std::string& why) {
    return Status(Code::kInvalidArgument, "free page hint (block " + std::to_string(r.block) +
                                         ", offset " + std::to_string(r.offset) + ", length " +
                                         std::to_string(r.length) + ") refused: " + why);
  };
  if (r.block >= ram.size())
    return refuse("the guest has " + std::to_string(ram.size()) + " RAM block(s)");
  if (r.length == 0) return refuse("empty range");
  if (r.offset % kTargetPageSize || r.length % kTargetPageSize)
    return refuse("not aligned to 4 KiB target pages");
  const uint64_t size = ram[r.block]->size();
  if (r.offset >= size || r.length > size - r.offset)
    return refuse("outside block '" + ram[r.block]->name() + "' (" + std::to_string(size) +
                  " bytes)");
  return Status::ok();
}

}  // namespace tern
