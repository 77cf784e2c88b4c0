#include "control/format.h"

#include <gtest/gtest.h>

namespace tern::control {
namespace {

TEST(FormatBytes, PicksBinaryUnits) {
  EXPECT_EQ(format_bytes(0), "0 B");
  EXPECT_EQ(format_bytes(1023), "1023 B");
  EXPECT_EQ(format_bytes(1536), "1.5 KiB");
  EXPECT_EQ(format_bytes(512ull << 20), "512.0 MiB");
  EXPECT_EQ(format_bytes(1ull << 30), "1.00 GiB");
  EXPECT_EQ(format_bytes(3ull << 40), "3.00 TiB");
}

TEST(FormatRate, DecimalMegabytes) {
  EXPECT_EQ(format_rate(0), "0.0 MB/s");
  EXPECT_EQ(format_rate(1.5e9), "1500.0 MB/s");
  EXPECT_EQ(format_rate(-3), "0.0 MB/s");
}

TEST(FormatDuration, MillisecondsSecondsMinutes) {
  EXPECT_EQ(format_duration_ms(7), "7 ms");
  EXPECT_EQ(format_duration_ms(1234), "1.23 s");
  EXPECT_EQ(format_duration_ms(125000), "2m 05s");
  EXPECT_EQ(format_duration_ms(3600 * 1000 + 60 * 1000), "1h 01m");
  EXPECT_EQ(format_duration_us(12), "12 us");
  EXPECT_EQ(format_duration_us(4096), "4.10 ms");
}

TEST(ParseSize, AcceptsSuffixesAndRejectsJunk) {
  EXPECT_EQ(parse_size("4096"), 4096u);
  EXPECT_EQ(parse_size("64K"), 65536u);
  EXPECT_EQ(parse_size("1G"), 1ull << 30);
  EXPECT_EQ(parse_size("512MiB"), 512ull << 20);
  EXPECT_EQ(parse_size("1.5g"), 3ull << 29);
  EXPECT_EQ(parse_size(""), std::nullopt);
  EXPECT_EQ(parse_size("G"), std::nullopt);
  EXPECT_EQ(parse_size("12X"), std::nullopt);
  EXPECT_EQ(parse_size("1.2.3M"), std::nullopt);
  EXPECT_EQ(parse_size("1.5"), std::nullopt);  // fractional bytes
}

TEST(ProgressLine, ShowsFractionSizesRateAndEta) {
  Progress p;
  p.status = "active";
  p.total = 1ull << 30;
  p.remaining = 768ull << 20;  // a quarter done
  p.transferred = 256ull << 20;
  p.bytes_per_second = 1e9;
  std::string line = progress_line(p, 20);
  EXPECT_EQ(line.substr(0, 22), "[#####---------------]");
  EXPECT_NE(line.find(" 25.0%"), std::string::npos) << line;
  EXPECT_NE(line.find("sent 256.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("left 768.0 MiB"), std::string::npos) << line;
  EXPECT_NE(line.find("1000.0 MB/s"), std::string::npos) << line;
  EXPECT_NE(line.find("ETA 805 ms"), std::string::npos) << line;  // 805306368 B at 1 GB/s
  EXPECT_EQ(line.substr(line.size() - 6), "active");
  EXPECT_EQ(line.find('\n'), std::string::npos);
}

TEST(ProgressLine, UnknownRateAndCompletion) {
  Progress p;
  p.status = "setup";
  EXPECT_NE(progress_line(p).find("ETA -"), std::string::npos);
  EXPECT_NE(progress_line(p).find("  0.0%"), std::string::npos);
  p.status = "completed";
  p.total = 100;
  p.remaining = 50;  // remaining may lag the final status; completed is always 100%
  std::string line = progress_line(p, 4);
  EXPECT_EQ(line.substr(0, 6), "[####]");
  EXPECT_NE(line.find("100.0%"), std::string::npos);
}

TEST(FormatTable, AlignsValuesAndKeepsSectionTitles) {
  std::string t = format_table({{"status", "active"}, {"ram:", ""}, {"  transferred", "1 B"}});
  EXPECT_EQ(t,
            "status         active\n"
            "ram:\n"
            "  transferred  1 B\n");
  EXPECT_EQ(format_table({{"a", "1"}}, 2), "  a  1\n");
}

TEST(FormatGrid, RightAlignsNumbers) {
  std::string g = format_grid({{"", "source", "destination"}, {"status", "completed", "failed"}});
  EXPECT_EQ(g,
            "           source  destination\n"
            "status  completed       failed\n");
}

}  // namespace
}  // namespace tern::control
