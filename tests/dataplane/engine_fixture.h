// A source sender and a destination side wired by real loopback channels, stepped by hand so
// that the order of events is deterministic (no worker threads). Used by the S1/S2/S3 tests.
#pragma once

#include <gtest/gtest.h>

#include <cstring>
#include <memory>
#include <thread>
#include <vector>

#include "dataplane/engine/send_state.h"
#include "dataplane/engine/sender.h"
#include "dataplane/transport.h"

namespace tern::testing_support {

struct Wired {
  ChannelSet src, dst;
};

// `count` loopback channels between two ends of this process.
inline Wired wire_loopback(const std::string& name, uint32_t count) {
  Wired w;
  auto listener = create_transport("loopback");
  auto connector = create_transport("loopback");
  EXPECT_TRUE(listener.is_ok() && connector.is_ok());
  auto uri = (*listener)->listen(name);
  EXPECT_TRUE(uri.is_ok()) << uri.status().to_string();
  std::thread t([&] {
    auto c = (*connector)->connect(name, count, 1, std::chrono::seconds(5));
    EXPECT_TRUE(c.is_ok()) << c.status().to_string();
    if (c.is_ok()) w.src = std::move(*c);
  });
  auto a = (*listener)->accept(std::chrono::seconds(5));
  t.join();
  EXPECT_TRUE(a.is_ok()) << a.status().to_string();
  if (a.is_ok()) w.dst = std::move(*a);
  return w;
}

// Frames as the destination saw them, with the bytes of page payloads.
struct Seen {
  FrameHeader hdr;
  uint8_t first_byte = 0;
};

inline std::vector<Seen> drain(Channel& c, size_t max = 4096) {
  std::vector<Seen> out;
  RxFrame f[64];
  while (out.size() < max) {
    size_t n = c.poll_rx(f, 64);
    if (n == 0) break;
    for (size_t i = 0; i < n; ++i) out.push_back({f[i].hdr, f[i].data ? f[i].data[0] : uint8_t{0}});
  }
  return out;
}

inline void send_request(Channel& urgent, uint32_t block, uint64_t offset) {
  TxFrame r{make_header(FrameType::kRequest, block, offset, 0, 0, 0, urgent.index()), nullptr};
  ASSERT_EQ(urgent.post(&r, 1), 1u);
  ASSERT_TRUE(urgent.flush());
}

}  // namespace tern::testing_support
