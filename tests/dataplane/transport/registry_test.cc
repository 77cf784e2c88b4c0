// Transport registry: URI parsing, registration, creation by name, the default choice. The
// built-in transports are registered by test_main.cc, as a program registers them at start.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>

#include "dataplane/transport.h"
#include "transports/builtin_transports.h"

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

// Which optional transports this binary has (transports/meson.build's TERN_HAVE_*) and what the
// registry lists agree: a transport compiled out is absent, one compiled in is registered.
TEST(Registry, ListsExactlyTheTransportsBuiltIn) {
  auto names = transport_names();
  auto has = [&](const char* n) { return std::find(names.begin(), names.end(), n) != names.end(); };
#ifdef TERN_HAVE_RDMA
  EXPECT_TRUE(has("rdma"));
#else
  EXPECT_FALSE(has("rdma"));
#endif
#ifdef TERN_HAVE_DPDK
  EXPECT_TRUE(has("dpdk"));
#else
  EXPECT_FALSE(has("dpdk"));
#endif
  register_builtin_transports();  // idempotent: nothing is registered twice
  EXPECT_EQ(transport_names(), names);
}

TEST(Registry, RegisterRefusesBadNamesMissingFactoriesAndDuplicates) {
  auto make_tcp = [] { return std::move(*create_transport("tcp")); };
  Status bad = register_transport({"Bad:Name", make_tcp, {}});
  EXPECT_EQ(bad.code(), Code::kInvalidArgument) << bad.to_string();
  Status none = register_transport({"nofactory", {}, {}});
  EXPECT_EQ(none.code(), Code::kInvalidArgument) << none.to_string();
  Status dup = register_transport({"tcp", make_tcp, {}});
  EXPECT_EQ(dup.code(), Code::kUnavailable) << dup.to_string();
  EXPECT_NE(dup.message().find("already registered"), std::string::npos);
}

TEST(Registry, ARegisteredTransportIsCreatedByNameAndRanksAfterTheEarlierOnes) {
  const DefaultTransport before = choose_default_transport();
  int made = 0, asked = 0;
  ASSERT_TRUE(register_transport({"test7",
                                  [&made] {
                                    ++made;
                                    return std::move(*create_transport("loopback"));
                                  },
                                  [&asked] {
                                    ++asked;
                                    return TransportAvailability{true, "test7 always works"};
                                  }})
                  .is_ok());
  auto names = transport_names();
  EXPECT_EQ(names.back(), "test7");
  auto t = create_transport("test7");
  ASSERT_TRUE(t) << t.status().to_string();
  EXPECT_EQ(made, 1);
  // tcp, registered before it, is always usable: the later registration is never the default
  // and is not even asked.
  const DefaultTransport after = choose_default_transport();
  EXPECT_EQ(after.name, before.name);
  EXPECT_EQ(asked, 0);
  EXPECT_NE(after.reason.find("test7"), std::string::npos) << after.reason;  // listed in order
}

TEST(Registry, DefaultIsABuiltTransportWithAReason) {
  DefaultTransport d = choose_default_transport();
  auto names = transport_names();
  EXPECT_NE(std::find(names.begin(), names.end(), d.name), names.end()) << d.name;
  EXPECT_NE(d.name, "loopback");
  EXPECT_FALSE(d.reason.empty());
  std::printf("[ default  ] %s: %s\n", d.name.c_str(), d.reason.c_str());
#if !defined(TERN_HAVE_RDMA) && !defined(TERN_HAVE_DPDK)
  EXPECT_EQ(d.name, "tcp");
  // (tests in this file may have registered more candidates after tcp)
  EXPECT_EQ(d.reason.rfind("tcp works wherever sockets do (in order of preference: tcp", 0), 0u)
      << d.reason;
#endif
#if defined(TERN_HAVE_RDMA) && defined(TERN_HAVE_DPDK)
  EXPECT_NE(d.reason.find("in order of preference: rdma, dpdk, tcp"), std::string::npos)
      << d.reason;
#endif
}

TEST(Registry, PrepareRunsTheNamedTransportsCheckOnly) {
  int asked = 0;
  ASSERT_TRUE(register_transport({"test8", [] { return std::move(*create_transport("loopback")); },
                                  [&asked] {
                                    ++asked;
                                    return TransportAvailability{false, "test8 cannot start here"};
                                  }})
                  .is_ok());
  const TransportAvailability a = prepare_transport("test8");
  EXPECT_EQ(asked, 1);
  EXPECT_FALSE(a.usable);
  EXPECT_EQ(a.reason, "test8 cannot start here");
  // loopback has no check: nothing to start.
  const TransportAvailability l = prepare_transport("loopback");
  EXPECT_TRUE(l.usable) << l.reason;
  // An unknown name says so and lists what there is.
  const TransportAvailability u = prepare_transport("nosuch");
  EXPECT_FALSE(u.usable);
  EXPECT_NE(u.reason.find("no transport 'nosuch'"), std::string::npos) << u.reason;
  EXPECT_NE(u.reason.find("tcp"), std::string::npos) << u.reason;
}

}  // namespace
}  // namespace tern
