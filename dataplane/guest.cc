#include "dataplane/guest.h"

namespace tern {

Layout Guest::layout() const {
  Layout l;
  for (RamBlock* b : ram()) l.blocks.push_back({b->name(), b->size(), b->host_page_size()});
  return l;
}

}  // namespace tern
