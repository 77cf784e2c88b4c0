// Transport registry: URI parsing, creation by name, the default choice.
#include <gtest/gtest.h>

#include <algorithm>

#include "dataplane/transport.h"

namespace tern {
namespace {

TEST(ParseUri, SplitsAtTheFirstColon) {
  auto p = parse_uri("tcp:127.0.0.1:4444");
  ASSERT_TRUE(p);
  EXPECT_EQ(p->transport, "tcp");
  EXPECT_EQ(p->address, "127.0.0.1:4444");
  auto l = parse_uri("loopback:");
  ASSERT_TRUE(l);
  EXPECT_EQ(l->transport, "loopback");
  EXPECT_EQ(l->address, "");
  auto n = parse_uri("loopback:dest");
  ASSERT_TRUE(n);
  EXPECT_EQ(n->address, "dest");
  auto v6 = parse_uri("tcp:[::1]:80");
  ASSERT_TRUE(v6);
  EXPECT_EQ(v6->address, "[::1]:80");
}

TEST(ParseUri, ErrorsNameTheBadPart) {
  for (const char* bad : {"", "tcp", ":1234", "TCP:1.2.3.4:5", "tcp:"}) {
    auto p = parse_uri(bad);
    ASSERT_FALSE(p) << bad;
    EXPECT_EQ(p.status().code(), Code::kInvalidArgument) << bad;
  }
  EXPECT_NE(parse_uri("tcp").status().message().find("'tcp'"), std::string::npos);
  EXPECT_NE(parse_uri("TCP:x:1").status().message().find("'TCP'"), std::string::npos);
}

TEST(Registry, ListsAndCreatesTheBuiltTransports) {
  auto names = transport_names();
  for (const char* want : {"tcp", "loopback"}) {
    ASSERT_NE(std::find(names.begin(), names.end(), want), names.end()) << want;
    auto t = create_transport(want);
    ASSERT_TRUE(t) << t.status().to_string();
    EXPECT_EQ((*t)->name(), want);
  }
}

TEST(Registry, UnknownOrAbsentTransportIsNotFoundAndListsTheAvailable) {
  auto t = create_transport("carrier-pigeon");
  ASSERT_FALSE(t);
  EXPECT_EQ(t.status().code(), Code::kNotFound);
  EXPECT_NE(t.status().message().find("carrier-pigeon"), std::string::npos);
  EXPECT_NE(t.status().message().find("tcp"), std::string::npos);
  EXPECT_NE(t.status().message().find("loopback"), std::string::npos);
  auto names = transport_names();
  for (const char* optional : {"rdma", "dpdk"}) {
    if (std::find(names.begin(), names.end(), optional) != names.end()) continue;
    auto r = create_transport(optional);
    ASSERT_FALSE(r);
    EXPECT_EQ(r.status().code(), Code::kNotFound);
    EXPECT_NE(r.status().message().find("not built"), std::string::npos)
        << r.status().message();
  }
}

TEST(Registry, DefaultIsABuiltTransportWithAReason) {
  DefaultTransport d = choose_default_transport();
  auto names = transport_names();
  EXPECT_NE(std::find(names.begin(), names.end(), d.name), names.end()) << d.name;
  EXPECT_FALSE(d.reason.empty());
#if !defined(TERN_HAVE_RDMA) && !defined(TERN_HAVE_DPDK)
  EXPECT_EQ(d.name, "tcp");
  EXPECT_EQ(d.reason, "no RDMA device and the dpdk transport is not built");
#endif
}

}  // namespace
}  // namespace tern
