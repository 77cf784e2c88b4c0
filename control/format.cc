#include "control/format.h"

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdio>
#include <string>

namespace tern::control {
namespace {

std::string printf_string(const char* fmt, double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, fmt, v);
  return buf;
}

}  // namespace

std::string format_bytes(uint64_t bytes) {
  constexpr double kKiB = 1024.0, kMiB = kKiB * 1024, kGiB = kMiB * 1024, kTiB = kGiB * 1024;
  double b = static_cast<double>(bytes);
  if (bytes < 1024) return std::to_string(bytes) + " B";
  if (b < kMiB) return printf_string("%.1f KiB", b / kKiB);
  if (b < kGiB) return printf_string("%.1f MiB", b / kMiB);
  if (b < kTiB) return printf_string("%.2f GiB", b / kGiB);
  return printf_string("%.2f TiB", b / kTiB);
}

std::string format_rate(double bytes_per_second) {
  if (!(bytes_per_second > 0)) return "0.0 MB/s";
  return printf_string("%.1f MB/s", bytes_per_second / 1e6);
}

std::string format_duration_ms(uint64_t ms) {
  if (ms < 1000) return std::to_string(ms) + " ms";
  if (ms < 60'000) return printf_string("%.2f s", static_cast<double>(ms) / 1000.0);
  uint64_t s = ms / 1000;
  char buf[48];
  if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%llum %02llus", static_cast<unsigned long long>(s / 60),
                  static_cast<unsigned long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lluh %02llum", static_cast<unsigned long long>(s / 3600),
                  static_cast<unsigned long long>((s / 60) % 60));
  }
  return buf;
}

std::string format_duration_us(double us) {
  if (us < 1000) return printf_string("%.0f us", us);
  if (us < 1e6) return printf_string("%.2f ms", us / 1000.0);
  return printf_string("%.2f s", us / 1e6);
}

std::optional<uint64_t> parse_size(std::string_view text) {
  size_t i = 0;
  while (i < text.size() && (std::isdigit(static_cast<unsigned char>(text[i])) || text[i] == '.'))
    ++i;
  if (i == 0) return std::nullopt;
  std::string number(text.substr(0, i));
  if (std::count(number.begin(), number.end(), '.') > 1) return std::nullopt;
  double value = std::strtod(number.c_str(), nullptr);
  std::string suffix(text.substr(i));
  for (char& c : suffix) c = static_cast<char>(std::toupper(static_cast<unsigned char>(c)));
  if (suffix.size() > 1 && suffix.back() == 'B') suffix.pop_back();  // "MB", "MIB"
  if (suffix.size() > 1 && suffix.back() == 'I') suffix.pop_back();  // "MI"
  double mult = 1;
  if (suffix.empty() || suffix == "B") {
    mult = 1;
  } else if (suffix == "K") {
    mult = 1024.0;
  } else if (suffix == "M") {
    mult = 1024.0 * 1024;
  } else if (suffix == "G") {
    mult = 1024.0 * 1024 * 1024;
  } else if (suffix == "T") {
    mult = 1024.0 * 1024 * 1024 * 1024;
  } else {
    return std::nullopt;
  }
  double bytes = value * mult;
  if (bytes > 1.8e19) return std::nullopt;
  if (mult == 1 && number.find('.') != std::string::npos) return std::nullopt;
  return static_cast<uint64_t>(std::llround(bytes));
}

std::string progress_line(const Progress& p, int width) {
  double fraction = 0;
  if (p.status == "completed") {
    fraction = 1;
  } else if (p.total > 0) {
    uint64_t done = p.total > p.remaining ? p.total - p.remaining : 0;
    fraction = std::clamp(static_cast<double>(done) / static_cast<double>(p.total), 0.0, 1.0);
  }
  width = std::max(width, 1);
  int filled = static_cast<int>(fraction * width + 1e-9);
  std::string line = "[" + std::string(filled, '#') + std::string(width - filled, '-') + "] ";
  line += printf_string("%5.1f%%", fraction * 100);
  line += "  sent " + format_bytes(p.transferred);
  line += "  left " + format_bytes(p.remaining);
  line += "  " + format_rate(p.bytes_per_second);
  // Covering RAM at least twice as fast as bytes go out: say so, or the rate misleads.
  if (p.work_per_second > 2 * p.bytes_per_second)
    line += ", covering " + format_rate(p.work_per_second);
  line += "  ETA ";
  if (p.status == "completed") {
    line += "0 ms";
  } else if (p.eta_ms) {
    line += format_duration_ms(*p.eta_ms);
  } else if (p.bytes_per_second > 0) {
    double eta_ms = static_cast<double>(p.remaining) / p.bytes_per_second * 1000.0;
    line += format_duration_ms(static_cast<uint64_t>(eta_ms));
  } else {
    line += "-";
  }
  line += "  " + p.status;
  return line;
}

std::string format_table(const Rows& rows, int indent) {
  size_t key_width = 0;
  for (const auto& [k, v] : rows) {
    if (!v.empty()) key_width = std::max(key_width, k.size());
  }
  std::string out;
  std::string pad(static_cast<size_t>(std::max(indent, 0)), ' ');
  for (const auto& [k, v] : rows) {
    if (v.empty()) {
      out += pad + k + "\n";
      continue;
    }
    out += pad + k + std::string(key_width - k.size() + 2, ' ') + v + "\n";
  }
  return out;
}

std::string format_grid(const std::vector<std::vector<std::string>>& rows) {
  std::vector<size_t> widths;
  for (const auto& row : rows) {
    if (widths.size() < row.size()) widths.resize(row.size(), 0);
    for (size_t c = 0; c < row.size(); ++c) widths[c] = std::max(widths[c], row[c].size());
  }
  std::string out;
  for (const auto& row : rows) {
    std::string line;
    for (size_t c = 0; c < row.size(); ++c) {
      const std::string& cell = row[c];
      std::string fill(widths[c] - cell.size(), ' ');
      if (c == 0) {
        line += cell + fill;
      } else {
        line += "  " + fill + cell;
      }
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    out += line + "\n";
  }
  return out;
}

}  // namespace tern::control
