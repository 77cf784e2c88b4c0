// toolkit::SessionGatherer on loopback channel pairs: sessions gathered in any order and
// interleaved, drops with reasons (bad hello, late hello, late session), and its bounds.
#include "dataplane/toolkit/session_gatherer.h"

#include <gtest/gtest.h>

#include <thread>

#include "dataplane/transport/detail/loopback_channel.h"

namespace tern::toolkit {
namespace {

using namespace std::chrono_literals;

// A connection as the gatherer sees it (the far end), and the source's end that said `hello`.
struct Conn {
  std::unique_ptr<detail::LoopbackChannel> near, far;
};
Conn open(const HelloPayload* hello) {
  auto p = detail::make_loopback_pair();
  EXPECT_TRUE(p.is_ok());
  Conn c{std::move(p->first), std::move(p->second)};
  if (hello) {
    EXPECT_TRUE(send_hello(*c.near, *hello, Clock::now() + 1s).is_ok());
  }
  return c;
}

bool mentions(const std::vector<Status>& v, const std::string& needle) {
  for (const Status& s : v)
    if (s.message().find(needle) != std::string::npos) return true;
  return false;
}

TEST(SessionGatherer, InterleavedSessionsCompleteSeparately) {
  SessionGatherer g;
  std::vector<Conn> keep;
  const HelloPayload hs[] = {{0, 3, 1}, {2, 3, 2}, {1, 3, 1}, {0, 3, 2}, {2, 3, 1}, {1, 3, 2}};
  for (const HelloPayload& h : hs) {
    keep.push_back(open(&h));
    g.add_connection(std::move(keep.back().far), "peer");
  }
  g.poll();
  for (int i = 0; i < 2; ++i) {
    auto set = g.take_complete();
    ASSERT_TRUE(set) << g.progress();
    ASSERT_EQ(set->size(), 3u);
    for (uint32_t k = 0; k < 3; ++k) EXPECT_EQ((*set)[k]->index(), k);
  }
  EXPECT_FALSE(g.take_complete());
  EXPECT_TRUE(g.take_rejected().empty());
}

// Transport::set_handshake_timeout reaches the gatherer this way: connections added after it
// get the new hello deadline.
TEST(SessionGatherer, HelloTimeoutSetLaterAppliesToNewConnections) {
  SessionGatherer g;
  g.set_hello_timeout(50ms);
  Conn silent = open(nullptr);
  g.add_connection(std::move(silent.far), "silent");
  std::this_thread::sleep_for(120ms);
  g.poll();
  EXPECT_TRUE(mentions(g.take_rejected(), "silent dropped: no hello within 50 ms")) << g.progress();
  EXPECT_EQ(g.waiting(), 0u);
}

TEST(SessionGatherer, BadAndLateHellosAndLateSessionsAreDroppedWithReasons) {
  SessionGatherer g({.hello_timeout = 50ms, .session_timeout = 100ms});
  const HelloPayload tiny{0, 2, 5}, first{0, 3, 6}, dup{0, 3, 6};
  Conn a = open(&tiny), b = open(&first), c = open(&dup), silent = open(nullptr);
  g.add_connection(std::move(a.far), "tiny");
  g.add_connection(std::move(b.far), "first");
  g.add_connection(std::move(c.far), "dup");
  g.add_connection(std::move(silent.far), "silent");
  g.poll();
  auto r = g.take_rejected();
  EXPECT_TRUE(mentions(r, "channel_count 2")) << g.progress();
  EXPECT_TRUE(mentions(r, "two hellos for channel_index 0"));
  EXPECT_EQ(g.waiting(), 1u);
  std::this_thread::sleep_for(120ms);
  g.poll();
  r = g.take_rejected();
  EXPECT_TRUE(mentions(r, "silent dropped: no hello within 50 ms"));
  EXPECT_TRUE(mentions(r, "1 of 3 channels after 100 ms"));
  EXPECT_EQ(g.progress(), "no channel");
  EXPECT_EQ(g.next_deadline(), Clock::time_point::max());
}

TEST(SessionGatherer, BoundsEvictTheOldestWaiterAndSession) {
  SessionGatherer g({.max_waiting = 2, .max_sessions = 2});
  std::vector<Conn> keep;
  for (int i = 0; i < 3; ++i) {
    keep.push_back(open(nullptr));
    g.add_connection(std::move(keep.back().far), "w" + std::to_string(i));
  }
  EXPECT_EQ(g.waiting(), 2u);
  EXPECT_TRUE(mentions(g.take_rejected(), "w0 dropped before its hello"));
  for (uint64_t s = 1; s <= 3; ++s) {
    const HelloPayload h{0, 3, s};
    keep.push_back(open(&h));
    g.add_connection(std::move(keep.back().far), "s");
    g.poll();
  }
  EXPECT_TRUE(mentions(g.take_rejected(), "session 0x1 dropped"));
  EXPECT_EQ(g.progress().find("0x1:"), std::string::npos) << g.progress();
}

}  // namespace
}  // namespace tern::toolkit
