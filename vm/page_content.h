// Self-checking page content of the thread guest. Every 4 KiB target page that was ever written
// holds a 32-byte header {index, version, checksum, magic} and a payload derived from
// (index, version) by a cheap xorshift fill; version 0 means "never written" and the page is all
// zeros. So any page can be checked on its own against the version the guest recorded for it.
//
// Threads: pure functions. fill_page stores with relaxed atomic word stores so that a reader
// copying the page concurrently (a migration worker, a test) is not a data race; the result of
// such a copy may be torn, which check_page reports. check_page needs the page quiescent
// (no writer while it runs): the owning vCPU checks its own page, or the guest is paused.
#pragma once

#include <cstdint>
#include <string>

namespace tern {

inline constexpr uint64_t kPageMagic = 0x7465726e70616765;  // "ternpage"

struct PageHeader {
  uint64_t index;     // global target page number of the page
  uint64_t version;   // write count of the page, >= 1
  uint64_t checksum;  // page_checksum(index, version, payload)
  uint64_t magic;     // kPageMagic
};
static_assert(sizeof(PageHeader) == 32);

inline constexpr uint32_t kPageWords = 4096 / 8;
inline constexpr uint32_t kPayloadWords = kPageWords - sizeof(PageHeader) / 8;

// Writes the full content of version `version` (>= 1) of page `index` into `page` (4 KiB).
void fill_page(uint8_t* page, uint64_t index, uint64_t version);

// Checks `page` against the expected (index, version); version 0 expects an all-zero page.
// On mismatch returns false and sets *why (if non-null) to a precise reason:
// "page 1234: version 7 in page, 8 in table".
bool check_page(const uint8_t* page, uint64_t index, uint64_t version, std::string* why);

// Copies one page with relaxed atomic word loads (safe against a concurrent fill_page).
void copy_page_relaxed(uint8_t* dst, const uint8_t* src);

}  // namespace tern
