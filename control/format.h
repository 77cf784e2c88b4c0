// Human-readable output for ternctl and the demo: sizes, rates, durations, a one-line progress
// bar and aligned tables. Pure functions; no I/O.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace tern::control {

// 512 -> "512 B", 1536 -> "1.5 KiB", 536870912 -> "512.0 MiB", 1073741824 -> "1.00 GiB".
std::string format_bytes(uint64_t bytes);
// Bytes per second in decimal megabytes: 1.5e9 -> "1500.0 MB/s".
std::string format_rate(double bytes_per_second);
// Milliseconds: 7 -> "7 ms", 1234 -> "1.23 s", 125000 -> "2m 05s".
std::string format_duration_ms(uint64_t ms);
// Microseconds: 12 -> "12 us", 4096 -> "4.10 ms".
std::string format_duration_us(double us);

// Parses "4096", "64K", "1G", "2M", "1.5G", "512MiB" (binary multiples). Nullopt when malformed.
std::optional<uint64_t> parse_size(std::string_view text);

// One migration progress sample, from a query-migrate reply.
struct Progress {
  std::string status;
  uint64_t transferred = 0;
  uint64_t remaining = 0;
  uint64_t total = 0;
  double bytes_per_second = 0;  // current throughput (bytes sent per second)
  uint64_t elapsed_ms = 0;
  // Guest RAM covered per second and the ETA from it (ProgressRate); when unset the line
  // falls back to bytes_per_second for both.
  double work_per_second = 0;
  std::optional<uint64_t> eta_ms;
};

// "[########------------]  41.2%  sent 421.9 MiB  left 602.1 MiB  1180.3 MB/s  ETA 0.5 s  active"
// `width` is the number of cells inside the brackets. The ETA is "-" when the rate is 0. When
// RAM is covered much faster than bytes are sent (zero memory skipped), the covered rate
// follows: "sent 12.0 MB/s, covering 900.0 MB/s".
std::string progress_line(const Progress& p, int width = 24);

// Two-column key/value table, keys left-aligned and padded to the widest key, one row per line,
// each line ending in '\n'. A row with an empty value and a key ending in ':' is a section title.
using Rows = std::vector<std::pair<std::string, std::string>>;
std::string format_table(const Rows& rows, int indent = 0);

// A table with a header row and columns aligned (first column left, the others right).
std::string format_grid(const std::vector<std::vector<std::string>>& rows);

}  // namespace tern::control
