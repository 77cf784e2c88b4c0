#include "tests/dataplane/transport/harness.h"

#include <gtest/gtest.h>
#include <poll.h>
#include <unistd.h>

#include <cstdio>
#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <future>
#include <optional>

#include "tests/dataplane/test_tls_certs.h"
#include "tests/dataplane/transport/hello_access.h"
#ifdef TERN_HAVE_DPDK
#include <cstdio>
#include <cstdlib>

#include "dpdk/dpdk_transport.h"
#endif

namespace tern::testing {
namespace {

[[maybe_unused]] std::string unique_loopback_name() {
  static std::atomic<int> n{0};
  return "conformance-" + std::to_string(::getpid()) + "-" + std::to_string(n++);
}

// The rdma suite (tests/rdma) builds these same bodies with TERN_CONFORMANCE_RDMA into its own
// binary, which runs where an RDMA device is (the soft-RoCE VM) and over rdma only.
[[maybe_unused]] std::string rdma_host() {
  const char* ip = std::getenv("TERN_RDMA_IP");
  return ip && *ip ? ip : "127.0.0.1";
}

#if defined(TERN_HAVE_DPDK) && !defined(TERN_CONFORMANCE_RDMA)
// dpdk links two transports of this process: over a net_ring pair by default, over memif
// (real sockets and shared memory, both ends here) with TERN_TEST_DPDK_LINK=memif. Left out,
// with the reason printed, where DPDK cannot start.
std::vector<Harness> dpdk_harnesses() {
#if defined(__SANITIZE_THREAD__)
  std::printf("[ SKIPPED  ] dpdk conformance: DPDK's rings and mempools are not built with "
              "TSan, so packets handed between threads look like data races\n");
  return {};
#endif
  if (Status s = dpdk_can_start(); !s.is_ok()) {
    std::printf("[ SKIPPED  ] dpdk conformance: %s\n", s.to_string().c_str());
    return {};
  }
  const char* link = std::getenv("TERN_TEST_DPDK_LINK");
  const bool memif = link != nullptr && std::string(link) == "memif";
  auto address = [memif] {
    static std::atomic<int> n{0};
    const std::string tag = std::to_string(::getpid()) + "-" + std::to_string(n++);
    return memif ? "net_memif0,socket=/run/tern-conformance-" + tag + ".sock"
                 : "net_ring,name=conformance-" + tag;
  };
  return {{"dpdk", address,
           {"", "nosuch0", "net_ring", "net_ring,name=x,loss=2", "net_memif0,queues=1",
            "net_memif0,role=server,socket=/run/x.sock"}}};
}
#endif

#ifndef TERN_CONFORMANCE_RDMA
// tcp with TLS 1.3 (x509, mutual) under every channel: both sides load one credential set
// holding both pairs, made once per process. Left out, with the reason, without openssl.
std::vector<Harness> tls_harnesses() {
  static const std::shared_ptr<const TlsChannelConfig> config = [] {
    std::shared_ptr<const TlsChannelConfig> none;
    char dir[] = "/tmp/tern-tls-conformance-XXXXXX";
    if (::mkdtemp(dir) == nullptr) return none;
    const auto pki = testing_support::make_test_pki(dir);
    if (!pki.error.empty()) {
      std::printf("[ SKIPPED  ] tcptls conformance: %s\n", pki.error.c_str());
      return none;
    }
    auto creds = TlsCredentials::load(pki.good);
    if (!creds) {
      std::printf("[ SKIPPED  ] tcptls conformance: %s\n", creds.status().to_string().c_str());
      return none;
    }
    auto c = std::make_shared<TlsChannelConfig>();
    c->creds = *creds;
    return std::shared_ptr<const TlsChannelConfig>(c);
  }();
  if (!config) return {};
  return {{"tcptls",
           [] { return std::string("127.0.0.1:0"); },
           {"127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", ":4444",
            "127.0.0.1:0"},
           "tcp",
           [](Transport& t) { EXPECT_TRUE(t.set_tls(config).is_ok()); }}};
}
#endif

const std::vector<Harness>& all() {
  static const std::vector<Harness> kAll = [] {
    std::vector<Harness> v = {
#ifdef TERN_CONFORMANCE_RDMA
      {"rdma",
       [] { return rdma_host() + ":0"; },
       {"127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", ":4444",
        "127.0.0.1:0"}},
#else
      {"loopback", unique_loopback_name, {"a:b"}},
      {"tcp",
       [] { return std::string("127.0.0.1:0"); },
       {"127.0.0.1", "127.0.0.1:", "127.0.0.1:http", "127.0.0.1:70000", ":4444",
        "127.0.0.1:0"}},
#endif
    };
#if defined(TERN_HAVE_DPDK) && !defined(TERN_CONFORMANCE_RDMA)
    for (Harness& h : dpdk_harnesses()) v.push_back(std::move(h));
#endif
#ifndef TERN_CONFORMANCE_RDMA
    for (Harness& h : tls_harnesses()) v.push_back(std::move(h));
#endif
    return v;
  }();
  return kAll;
}

std::string address_of(const std::string& uri) {
  auto p = parse_uri(uri);
  EXPECT_TRUE(p.is_ok()) << p.status().to_string();
  return p ? p->address : "";
}

}  // namespace

const Harness& harness(const std::string& name) {
  for (const Harness& h : all())
    if (h.name == name) return h;
  ADD_FAILURE() << "no harness for " << name;
  return all().front();
}

Result<std::unique_ptr<Transport>> make_transport(const Harness& h) {
  auto t = create_transport(h.transport.empty() ? h.name : h.transport);
  if (t && h.configure) h.configure(**t);
  return t;
}

std::vector<std::string> harness_names() {
  std::vector<std::string> v;
  for (const Harness& h : all()) v.push_back(h.name);
  return v;
}

Connected connect_pair(const Harness& h, uint32_t count, uint64_t session) {
  Connected c;
  auto dst = make_transport(h);
  auto src = make_transport(h);
  EXPECT_TRUE(dst && src);
  if (!dst || !src) return c;
  c.dst_transport = std::move(*dst);
  c.src_transport = std::move(*src);
  auto uri = c.dst_transport->listen(h.listen_address());
  EXPECT_TRUE(uri.is_ok()) << uri.status().to_string();
  if (!uri) return c;
  auto accepted = std::async(std::launch::async, [&] { return c.dst_transport->accept(5s); });
  auto conn = c.src_transport->connect(address_of(*uri), count, session, 5s);
  auto acc = accepted.get();
  EXPECT_TRUE(conn.is_ok()) << conn.status().to_string();
  EXPECT_TRUE(acc.is_ok()) << acc.status().to_string();
  if (conn) c.src = std::move(*conn);
  if (acc) c.dst = std::move(*acc);
  return c;
}

Result<ChannelSet> connect_with_hellos(Transport& t, const std::string& address,
                                       const std::vector<HelloPayload>& hellos,
                                       std::chrono::milliseconds timeout) {
  return toolkit::HelloTransportAccess::connect_with_hellos(t, address, hellos, timeout);
}

Status accept_with_hellos(const Harness& h, const std::vector<HelloPayload>& hellos) {
  auto dst = make_transport(h);
  auto src = make_transport(h);
  if (!dst || !src) return Status(Code::kInternal, "cannot create " + h.name);
  auto uri = (*dst)->listen(h.listen_address());
  if (!uri) return uri.status();
  // accept() drops a channel whose hello is bad and goes on: the first drop is the answer.
  // It keeps accepting until the source is done: a TLS source's connect needs accept() for
  // its handshake (plain tcp completes in the kernel's backlog).
  std::atomic<bool> connected{false};
  auto accepted = std::async(std::launch::async, [&]() -> Status {
    // Bounds, not expectations: 30 s for the source to connect (a TLS handshake under ASan on
    // a loaded host took over 2 s), then 2 s more for an answer (none comes for a session
    // that cannot complete: accept's own timeout is the answer then).
    const auto give_up = std::chrono::steady_clock::now() + 30s;
    std::optional<std::chrono::steady_clock::time_point> quiet_until;
    std::optional<Status> answer;
    Status last;  // accept's own timeout, which names what it has gathered
    while (!answer || !connected.load()) {
      auto acc = (*dst)->accept(50ms);
      if (!acc) last = acc.status();
      auto rejected = (*dst)->take_rejected();
      if (!answer && acc) answer = Status::ok();
      if (!answer && !rejected.empty()) answer = rejected.front();
      if (!answer && acc.status().code() != Code::kTimeout) answer = acc.status();
      const auto now = std::chrono::steady_clock::now();
      if (connected.load() && !quiet_until) quiet_until = now + 2s;
      if (now > give_up || (quiet_until && now > *quiet_until)) break;
    }
    return answer ? *answer : last;
  });
  auto conn = connect_with_hellos(**src, address_of(*uri), hellos, 30s);
  connected = true;
  EXPECT_TRUE(conn.is_ok()) << conn.status().to_string();
  return accepted.get();
}

namespace {
void wait_readable(const Channel& rx, int ms) {
  pollfd pfd{rx.wait_fd(), POLLIN, 0};
  if (pfd.fd >= 0) ::poll(&pfd, 1, ms);
}

void record(const RxFrame* in, size_t n, std::vector<Received>& out) {
  for (size_t i = 0; i < n; ++i) {
    Received r{in[i].hdr, in[i].data, {}};
    if (in[i].data && static_cast<FrameType>(in[i].hdr.type) != FrameType::kPage)
      r.payload.assign(in[i].data, in[i].data + in[i].hdr.length);
    out.push_back(std::move(r));
  }
}
}  // namespace

std::vector<Received> transfer(Channel& tx, Channel& rx, const std::vector<TxFrame>& frames,
                               std::chrono::milliseconds timeout, size_t batch,
                               std::vector<size_t>* batches) {
  std::vector<Received> got;
  std::vector<RxFrame> buf(batch);
  size_t posted = 0;
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (got.size() < frames.size() && std::chrono::steady_clock::now() < deadline) {
    bool progress = false;
    if (posted < frames.size()) {
      size_t k = tx.post(frames.data() + posted, frames.size() - posted);
      posted += k;
      progress |= k > 0;
    }
    if (!tx.flush()) break;
    tx.poll_tx();
    size_t r = rx.poll_rx(buf.data(), batch);
    if (r && batches) batches->push_back(r);
    record(buf.data(), r, got);
    if (!rx.error().is_ok()) break;
    progress |= r > 0;
    if (!progress) wait_readable(rx, 1);
  }
  return got;
}

void poll_until_error(Channel& rx, std::chrono::milliseconds timeout,
                      std::vector<Received>* got) {
  RxFrame buf[16];
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (rx.error().is_ok() && std::chrono::steady_clock::now() < deadline) {
    size_t r = rx.poll_rx(buf, 16);
    if (got) record(buf, r, *got);
    if (r == 0 && rx.error().is_ok()) wait_readable(rx, 5);
  }
}

Guarded::Guarded(size_t size, uint8_t fill) : size_(size), mem_(size + 2 * kGuard, kGuardByte) {
  std::memset(data(), fill, size);
}

bool Guarded::guards_intact() const {
  auto ok = [](auto b, auto e) { return std::all_of(b, e, [](uint8_t v) { return v == kGuardByte; }); };
  return ok(mem_.begin(), mem_.begin() + kGuard) && ok(mem_.end() - kGuard, mem_.end());
}

bool Guarded::all(uint8_t v) const {
  return std::all_of(mem_.begin() + kGuard, mem_.end() - kGuard,
                     [v](uint8_t x) { return x == v; });
}

void expect_huge_pages_arrive(Channel& tx, Channel& rx, size_t bytes) {
  Guarded dst(bytes, 0);
  Landing landing({{dst.data(), bytes, kHugePageBytes}});
  rx.set_landing(&landing);
  std::vector<uint8_t> src(bytes);
  std::vector<TxFrame> frames;
  for (uint64_t off = 0; off < bytes; off += kHugePageBytes) {
    fill_pattern(src.data() + off, kHugePageBytes, off);
    frames.push_back({make_header(FrameType::kPage, 0, off, kHugePageBytes, kFlagHostPageEnd, 0,
                                  kFirstBulkChannel),
                      src.data() + off});
  }
  auto got = transfer(tx, rx, frames, 30s);
  EXPECT_TRUE(rx.error().is_ok()) << rx.error().to_string();
  EXPECT_EQ(got.size(), frames.size());
  EXPECT_EQ(std::memcmp(dst.data(), src.data(), bytes), 0) << "a page arrived wrong";
  EXPECT_TRUE(dst.guards_intact());
  rx.set_landing(nullptr);
}

void fill_pattern(uint8_t* p, size_t n, uint64_t seq) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = (seq * 0x9E3779B97F4A7C15ull) ^ (i * 0xBF58476D1CE4E5B9ull);
    std::memcpy(p + i, &v, std::min<size_t>(8, n - i));
  }
}

bool check_pattern(const uint8_t* p, size_t n, uint64_t seq) {
  for (size_t i = 0; i < n; i += 8) {
    uint64_t v = (seq * 0x9E3779B97F4A7C15ull) ^ (i * 0xBF58476D1CE4E5B9ull);
    if (std::memcmp(p + i, &v, std::min<size_t>(8, n - i)) != 0) return false;
  }
  return true;
}

}  // namespace tern::testing
