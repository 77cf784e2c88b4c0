#include "control/qmp_stream.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

namespace tern::control {
namespace {

std::vector<StreamItem> feed_all(JsonStreamReader& r, std::string_view data) {
  std::vector<StreamItem> out;
  r.feed(data, out);
  return out;
}

TEST(JsonStreamReader, CutsValuesWhereverTheBytesFall) {
  JsonStreamReader r;
  EXPECT_TRUE(feed_all(r, "{\"a\": \"}{\\\"\",").empty());
  EXPECT_GT(r.pending(), 0u);
  auto items = feed_all(r, "\n\"b\": [1, {}]}  {\"c\":1}{\"d\"");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_TRUE(items[0].ok);
  EXPECT_EQ(items[0].text, "{\"a\": \"}{\\\"\",\n\"b\": [1, {}]}");
  EXPECT_EQ(items[1].text, "{\"c\":1}");
  items = feed_all(r, ":2}");
  ASSERT_EQ(items.size(), 1u);
  EXPECT_EQ(items[0].text, "{\"d\":2}");
  EXPECT_EQ(r.pending(), 0u);
}

TEST(JsonStreamReader, ErrorsSkipToTheNextLine) {
  JsonStreamReader r;
  auto items = feed_all(r, "\xff{\"x\":1}\n{\"y\":1}");
  ASSERT_EQ(items.size(), 2u);
  EXPECT_FALSE(items[0].ok);
  EXPECT_EQ(items[0].error, "JSON parse error, expecting a JSON object, got \\xff");
  EXPECT_EQ(items[1].text, "{\"y\":1}");
  items = feed_all(r, "{]\n{\"a\":\"\x01\"}\n{\x80}\n");
  ASSERT_EQ(items.size(), 3u);
  for (const auto& i : items) EXPECT_FALSE(i.ok);
}

TEST(JsonStreamReader, BoundsSizeAndDepth) {
  JsonStreamReader r({.max_object_bytes = 16, .max_depth = 3});
  auto items = feed_all(r, "[[[]]]{\"a\":[[[1]]]}\n{\"0123456789abcdef\":1}\n{}");
  ASSERT_EQ(items.size(), 4u);
  EXPECT_TRUE(items[0].ok);
  EXPECT_NE(items[1].error.find("nesting deeper than 3"), std::string::npos);
  EXPECT_NE(items[2].error.find("longer than 16 bytes"), std::string::npos);
  EXPECT_TRUE(items[3].ok);
}

TEST(Sanitize, ExcerptsAndTruncationAreValidUtf8) {
  EXPECT_EQ(sanitize_excerpt("a\xc3\xa9\\\n", 10), "a\\xc3\\xa9\\x5c\\x0a");
  EXPECT_EQ(sanitize_excerpt("abcdef", 3), "abc...");
  std::string s = std::string(79, 'a') + "\xc3\xa9";
  EXPECT_EQ(utf8_truncate(s, 80), std::string(79, 'a'));
  EXPECT_EQ(utf8_truncate(s, 81), s);
  EXPECT_EQ(utf8_truncate("\xff\xc0\x80\xed\xa0\x80x", 100), "??????x");
  for (size_t n = 0; n < 90; ++n) {
    nlohmann::json j = utf8_truncate(s, n);
    EXPECT_NO_THROW(j.dump());
  }
}

}  // namespace
}  // namespace tern::control
