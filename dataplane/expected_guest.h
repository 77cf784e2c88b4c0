// Bounded commitments: what a destination agrees to commit memory for. A source's announced
// layout is checked against it before a byte of guest memory is made, so a peer never decides
// how much the destination allocates (docs/security.md).
//
// Threads: any; pure functions and a factory wrapper (the wrapped factory's own rules apply).
#pragma once

#include <cstdint>

#include "dataplane/guest.h"
#include "dataplane/status.h"
#include "dataplane/wire.h"

namespace tern {

// Most RAM blocks a layout may announce.
inline constexpr size_t kMaxLayoutBlocks = 64;

struct ExpectedGuest {
  // The guest RAM this destination was configured for (ternd --expect-ram); the layout's total
  // must equal it. 0: not configured, then only max_ram_bytes bounds it.
  uint64_t ram_bytes = 0;
  // Upper bound on the total when ram_bytes is 0 (ternd: this host's physical memory).
  uint64_t max_ram_bytes = 0;
};

// This host's physical memory in bytes (the default bound).
uint64_t host_memory_bytes();

// ok when `announced` fits `expected`; else kInvalidArgument naming what does not match
// ("the source announces 4096 MiB of guest RAM in 1 block; this destination expects 256 MiB").
[[nodiscard]] Status check_announced_layout(const Layout& announced, const ExpectedGuest& expected);

// `inner`, called only for layouts that pass check_announced_layout.
GuestFactory expecting(GuestFactory inner, ExpectedGuest expected);

}  // namespace tern
