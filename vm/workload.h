// What the vCPUs of a thread guest do: how many, how much RAM, which pages they write and how
// fast. Parsed from a compact string for the CLI:
//
//   vcpus=2,ram=1G,page=4K,wss=25%,rate=20000,pattern=random,seed=1
//
// Keys (all optional, any order):
//   vcpus=N            vCPU threads (1..256)
//   ram=SIZE           guest RAM (K/M/G/T suffixes, powers of two; "1G", "512MiB", "4096")
//   page=4K|2M         host page size (2M = hugetlb)
//   wss=P%|F|SIZE      working set: percent or fraction (0.25) of RAM, or a size
//   rate=N             target page writes per second per vCPU; 0 = as fast as possible
//   pattern=sequential|random|hotset
//   hot=W/S            hotset: W% of writes go to the first S% of each vCPU's working set
//   read=P%            share of operations that read a page instead of writing it
//   readers=N          the last N vCPUs only read (they never dirty a page)
//   seed=N             PRNG seed (same seed, same page sequence)
//   ring=N             software dirty ring entries per vCPU (power of two, 16..65536)
//   free=P%            the guest's heap frees P% of the working set when the guest first starts
//                      (pages written once, then freed, in host-page units so that 2M guests
//                      free whole huge pages); freed pages are reported for S5 free page
//                      hinting, and vCPUs no longer touch them
//   reuse=P%           share of each vCPU's operations that churn its heap: half reuse a freed
//                      page (written with new content), half free a page in use; with rate=N,
//                      about N*P/100 pages/s per vCPU
//
// Plain value type; no threads.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "dataplane/ram_block.h"
#include "dataplane/status.h"

namespace tern {

enum class Pattern { kSequential, kRandom, kHotset };

const char* pattern_name(Pattern p);

struct WorkloadSpec {
  uint32_t vcpus = 1;
  uint64_t ram_bytes = uint64_t{64} << 20;
  uint32_t page_size = kSmallPage;
  // Working set: wss_bytes if non-zero, else wss_fraction of RAM (rounded down to target pages,
  // capped at the RAM left after the version table).
  double wss_fraction = 1.0;
  uint64_t wss_bytes = 0;
  uint64_t rate = 0;
  Pattern pattern = Pattern::kRandom;
  uint32_t hot_write_pct = 90;
  uint32_t hot_set_pct = 10;
  uint32_t read_pct = 0;
  uint32_t readers = 0;
  uint64_t seed = 1;
  uint32_t ring_entries = 4096;
  uint32_t free_pct = 0;   // heap: share of the working set freed at the first start
  uint32_t reuse_pct = 0;  // heap: share of operations that reuse or free a page
  RamBacking backing = RamBacking::kAnonymous;  // "backing=anon|memfd" (thread guests)

  // Checks ranges and combinations; the message names the offending key.
  Status validate() const;
  // Canonical compact form: parse_workload(to_string()) yields an equal spec.
  std::string to_string() const;
  // "threads: 2 vCPUs, 1 GiB, 4K pages, wss 256 MiB, random, 20000 pages/s/vCPU"
  std::string describe() const;

  bool operator==(const WorkloadSpec&) const = default;
};

// Parses "key=value,..." (whitespace around items ignored). Errors name the bad key and value:
// "workload: bad value 'x' for 'vcpus' (expected a number)".
Result<WorkloadSpec> parse_workload(std::string_view text);

// "4096", "4K", "4KiB", "2M", "1G", "1GB" (binary multiples). Empty or malformed -> error.
Result<uint64_t> parse_size(std::string_view text);
// 1073741824 -> "1 GiB", 6291456 -> "6 MiB", 5000 -> "5000 B".
std::string format_bytes(uint64_t bytes);

}  // namespace tern
