// Shared guest RAM on transparent huge pages where memfds have none. A memfd's pages follow
// /sys/kernel/mm/transparent_hugepage/shmem_enabled, "never" by default: 4 KiB page cache pages,
// so every process that maps the RAM (the VMM, ternd) takes a fault per 16 pages and a write
// allocates one page per 4 KiB. A tmpfs instance mounted with huge=within_size gives 2 MiB
// pages whatever that setting says (only "deny" overrides it), as QEMU's memory-backend-file on
// such a mount does.
#pragma once

#include <cstdint>

#include "dataplane/status.h"

namespace tern {

// Whether this host's memfds get transparent huge pages for every writer (shmem_enabled
// "always", "within_size" or "force"); false when the setting cannot be read.
bool memfd_has_huge_pages();

// Whether the kernel may put transparent huge pages behind the mapping that starts at `start`
// (its THPeligible line in /proc/self/smaps): for a shared file mapping, whether the file's
// tmpfs gives huge pages. False when the mapping is not found or smaps cannot be read.
bool mapping_thp_eligible(const void* start);

// An unlinked file of `size` bytes on a private tmpfs instance with huge=within_size and room
// for exactly that file. The instance is never attached to a mount point (fsopen/fsmount), so
// no other process sees it; it lives as long as the file. Needs CAP_SYS_ADMIN (an error
// otherwise). The caller owns the returned descriptor (O_CLOEXEC).
Result<int> open_huge_tmpfs_file(uint64_t size);

}  // namespace tern
