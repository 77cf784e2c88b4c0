#include "vm/page_content.h"

#include <gtest/gtest.h>

#include <cstring>
#include <vector>

namespace tern {
namespace {

struct alignas(4096) Page {
  uint8_t b[4096];
};

TEST(PageContent, RoundTrip) {
  Page p{};
  std::string why;
  EXPECT_TRUE(check_page(p.b, 77, 0, &why)) << why;  // never written: all zero
  for (uint64_t v : {1u, 2u, 1000u}) {
    fill_page(p.b, 77, v);
    EXPECT_TRUE(check_page(p.b, 77, v, &why)) << why;
  }
  Page q{};
  fill_page(q.b, 78, 1000);
  EXPECT_NE(std::memcmp(p.b, q.b, 4096), 0) << "payload depends on the index";
  fill_page(q.b, 77, 999);
  EXPECT_NE(std::memcmp(p.b + 32, q.b + 32, 4096 - 32), 0) << "payload depends on the version";
}

TEST(PageContent, DetectsEveryKindOfDamage) {
  Page p{};
  std::string why;
  fill_page(p.b, 1234, 8);

  EXPECT_FALSE(check_page(p.b, 1234, 7, &why));
  EXPECT_EQ(why, "page 1234: version 8 in page, 7 in table");

  EXPECT_FALSE(check_page(p.b, 1235, 8, &why));
  EXPECT_EQ(why, "page 1235: header says page 1234 (misplaced page)");

  EXPECT_FALSE(check_page(p.b, 1234, 0, &why));
  EXPECT_EQ(why, "page 1234: version 8 in page, 0 in table");

  Page torn = p;
  torn.b[2000] ^= 1;
  EXPECT_FALSE(check_page(torn.b, 1234, 8, &why));
  EXPECT_NE(why.find("checksum mismatch"), std::string::npos) << why;
  EXPECT_NE(why.find("byte 2000"), std::string::npos) << why;

  Page bad_sum = p;
  bad_sum.b[16] ^= 0x80;  // the checksum field itself
  EXPECT_FALSE(check_page(bad_sum.b, 1234, 8, &why));
  EXPECT_NE(why.find("checksum"), std::string::npos) << why;

  Page zero{};
  EXPECT_FALSE(check_page(zero.b, 1234, 8, &why));
  EXPECT_NE(why.find("never arrived"), std::string::npos) << why;

  zero.b[4095] = 1;
  EXPECT_FALSE(check_page(zero.b, 5, 0, &why));
  EXPECT_NE(why.find("not all zero"), std::string::npos) << why;
}

TEST(PageContent, ManyPagesStayDistinct) {
  std::vector<Page> pages(64);
  for (uint64_t i = 0; i < pages.size(); ++i) fill_page(pages[i].b, i, i % 3 + 1);
  for (uint64_t i = 0; i < pages.size(); ++i) {
    EXPECT_TRUE(check_page(pages[i].b, i, i % 3 + 1, nullptr));
    Page copy;
    copy_page_relaxed(copy.b, pages[i].b);
    EXPECT_EQ(std::memcmp(copy.b, pages[i].b, 4096), 0);
  }
}

}  // namespace
}  // namespace tern
