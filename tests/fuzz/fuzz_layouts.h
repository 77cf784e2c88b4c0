// Shared by the wire fuzz targets: a fixed layout to check frames against when the input's own
// layout bytes do not decode, so the fuzzer explores the frame checks either way.
#pragma once

#include "dataplane/wire.h"

namespace tern::fuzz {

// Two blocks: 8 MiB of 2 MiB host pages, 1 MiB of 4 KiB host pages.
inline Layout default_layout() {
  Layout l;
  l.blocks.push_back({"ram-huge", 8u << 20, kHugePageBytes});
  l.blocks.push_back({"ram", 1u << 20, kTargetPageSize});
  return l;
}

}  // namespace tern::fuzz
