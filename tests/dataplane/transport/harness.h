// Shared fixture of the transport conformance suite: everything a test body needs to run
// against any transport. A new transport (rdma, dpdk) joins the suite by adding a Harness
// entry in harness.cc and its name to the INSTANTIATE_TEST_SUITE_P list.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/transport.h"

namespace tern::testing {

using namespace std::chrono_literals;

struct Harness {
  std::string name;
  // A listen address (without "name:") private to this test process.
  std::function<std::string()> listen_address;
  // Addresses connect() must refuse with kInvalidArgument.
  std::vector<std::string> bad_addresses;
  // The registry name when it differs from `name` ("tcptls" is tcp with TLS set).
  std::string transport = {};
  // Called on every transport the suite makes (both sides), before listen/connect.
  std::function<void(Transport&)> configure = {};
};

const Harness& harness(const std::string& name);
// A transport of the harness's kind, configured as the harness says.
Result<std::unique_ptr<Transport>> make_transport(const Harness& h);
std::vector<std::string> harness_names();

// Two transports of one kind, listening and connected.
struct Connected {
  std::unique_ptr<Transport> src_transport, dst_transport;
  ChannelSet src, dst;  // ordered by index on both sides
};
// Listens, accepts on a helper thread and connects `count` channels; fails the test on error.
Connected connect_pair(const Harness& h, uint32_t count = 3, uint64_t session = 42);

// The transport's connect_with_hellos (toolkit::HelloTransport, reached through
// hello_access.h): one channel per hello, each sent unchanged.
Result<ChannelSet> connect_with_hellos(Transport& t, const std::string& address,
                                       const std::vector<HelloPayload>& hellos,
                                       std::chrono::milliseconds timeout);

// Listens on a fresh destination and returns what accept() makes of the hellos a source sends
// with connect_with_hellos: ok when a session completes, else the first drop take_rejected
// reports (a bad hello costs its channel, not the listener), else accept's timeout.
Status accept_with_hellos(const Harness& h, const std::vector<HelloPayload>& hellos);

// A received frame with its payload copied out (RxFrame::data of non-page frames only lives
// until the next poll_rx).
struct Received {
  FrameHeader hdr;
  uint8_t* data = nullptr;
  std::vector<uint8_t> payload;  // non-page payloads
};

// Sends `frames` on `tx` and receives on `rx` from one thread, interleaved (so back-pressure
// resolves), until all arrived, rx fails, or `timeout`. Idle waits block on rx.wait_fd().
// `batch` bounds each poll_rx; `batches` (optional) records each poll_rx count.
std::vector<Received> transfer(Channel& tx, Channel& rx, const std::vector<TxFrame>& frames,
                               std::chrono::milliseconds timeout = 10s, size_t batch = 64,
                               std::vector<size_t>* batches = nullptr);

// Polls `rx` (blocking on its wait_fd between tries) until it fails or `timeout`.
// Frames that still arrive are appended to `got` when given.
void poll_until_error(Channel& rx, std::chrono::milliseconds timeout,
                      std::vector<Received>* got = nullptr);

// A buffer with guard bytes on both sides, to prove that nothing is written outside it.
class Guarded {
 public:
  static constexpr size_t kGuard = 4096;
  static constexpr uint8_t kGuardByte = 0xA5;
  Guarded(size_t size, uint8_t fill);
  uint8_t* data() { return mem_.data() + kGuard; }
  size_t size() const { return size_; }
  bool guards_intact() const;
  bool all(uint8_t v) const;

 private:
  size_t size_;
  std::vector<uint8_t> mem_;
};

// Sends `bytes` (a multiple of 2 MiB) of patterned 2 MiB page frames from tx into a fresh
// landing on rx, then checks (gtest expectations) that every frame and byte arrived; the
// landing is unset again before it returns.
void expect_huge_pages_arrive(Channel& tx, Channel& rx, size_t bytes);

// Deterministic page content for (seq, byte index).
void fill_pattern(uint8_t* p, size_t n, uint64_t seq);
bool check_pattern(const uint8_t* p, size_t n, uint64_t seq);

}  // namespace tern::testing
