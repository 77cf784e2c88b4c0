#include "dataplane/engine/fault_poller.h"

#include <cerrno>
#include <cstring>

namespace tern::engine {

namespace {
constexpr int kBurst = 64;
}

FaultPoller::FaultPoller(RecvState& state, Channel* urgent) : state_(state), urgent_(nullptr) {
  set_channel(urgent);
}

void FaultPoller::set_channel(Channel* urgent) {
  urgent_ = urgent;
  const ChannelKeys* keys = urgent ? urgent->keys() : nullptr;
  sealer_ = keys ? std::make_unique<MarkerSealer>(keys->send) : nullptr;
}

void FaultPoller::fail(Status s) {
  if (failed_.load(std::memory_order_relaxed)) return;
  error_ = std::move(s);
  failed_.store(true, std::memory_order_release);
}

bool FaultPoller::post_requests(TxFrame* requests, size_t nreq) {
  if (!urgent_ || nreq == 0) return true;
  uint8_t sealed[kBurst][kSealedMarkerBytes];  // post() copies them
  for (size_t i = 0; i < nreq; ++i) {
    requests[i].hdr.channel = urgent_->index();
    if (!sealer_) continue;
    if (!sealer_->seal(requests[i].hdr, nullptr, 0, &requests[i].hdr, sealed[i])) {
      fail(Status(Code::kInternal, "sealing a page request failed (libcrypto AES-256-GCM)"));
      return false;
    }
    requests[i].payload = sealed[i];
  }
  size_t posted = 0;
  while (posted < nreq) {
    size_t k = urgent_->post(requests + posted, nreq - posted);
    posted += k;
    if (!urgent_->flush()) {
      fail(urgent_->error());
      return false;
    }
    if (k == 0) urgent_->poll_tx();
  }
  state_.counters.requests.fetch_add(nreq, std::memory_order_relaxed);
  urgent_->poll_tx();
  return true;
}

bool FaultPoller::request_waiting_pages() {
  request_again_ = false;
  TxFrame requests[kBurst];
  size_t nreq = 0;
  for (uint32_t b = 0; b < state_.blocks.size(); ++b) {
    RamBlock* rb = state_.blocks[b];
    for (uint64_t hp = 0; hp < rb->host_pages(); ++hp) {
      if (state_.fault_time[b][hp].load(std::memory_order_acquire) == 0) continue;
      if (state_.received.block(b).test(hp)) continue;  // placed meanwhile
      requests[nreq++] = {make_header(FrameType::kRequest, b, hp * rb->host_page_size()),
                          nullptr};
      if (nreq == kBurst) {
        if (!post_requests(requests, nreq)) return false;
        nreq = 0;
      }
    }
  }
  return post_requests(requests, nreq);
}

PollResult FaultPoller::poll() {
  if (!enabled_ || failed()) return PollResult::kIdle;
  if (request_again_ && urgent_ && !request_waiting_pages()) return PollResult::kIdle;
  uint64_t addrs[kBurst];
  int n = state_.uffd->read_faults(addrs, kBurst);
  if (n < 0) {
    fail(Status(Code::kIo, std::string("reading userfaultfd: ") + std::strerror(-n)));
    return PollResult::kIdle;
  }
  if (n == 0) return PollResult::kIdle;
  const uint64_t now = now_ns();
  TxFrame requests[kBurst];
  size_t nreq = 0;
  for (int i = 0; i < n; ++i) {
    auto* addr = reinterpret_cast<uint8_t*>(addrs[i]);
    int b = state_.block_of(addr);
    if (b < 0) continue;  // not guest RAM (cannot happen: only guest RAM is registered)
    RamBlock* rb = state_.blocks[static_cast<uint32_t>(b)];
    const uint32_t hp_size = rb->host_page_size();
    const uint64_t hp = static_cast<uint64_t>(addr - rb->base()) / hp_size;
    uint8_t* page = rb->base() + hp * hp_size;
    AtomicBitmap& received = state_.received.block(static_cast<uint32_t>(b));
    // In place here already: received as a zero marker (or left a hole: RecvState::leave_hole)
    // and never written (a missing fault), or, for page-cache blocks, in the page cache but not
    // (or no longer) in the guest's mapping (a minor fault: e.g. a VMM that never mapped it).
    // Nothing to fetch: the page is placed here.
    const bool cached = state_.page_cache.size() > static_cast<size_t>(b) &&
                        state_.page_cache[static_cast<uint32_t>(b)] != nullptr;
    auto place_locally = [&] {
      int rc = cached ? state_.install(static_cast<uint32_t>(b), hp, 1, /*allocate=*/true)
                      : state_.uffd->zero(page, hp_size, hp_size);
      if (rc != 0 && rc != -EEXIST) {
        fail(Status(Code::kIo, std::string("local placement: ") + std::strerror(-rc)));
        return false;
      }
      state_.counters.local_zero.fetch_add(1, std::memory_order_relaxed);
      return true;
    };
    if (received.test(hp)) {
      if (!place_locally()) return PollResult::kIdle;
      continue;
    }
    std::atomic<uint64_t>& t = state_.fault_time[static_cast<uint32_t>(b)][hp];
    uint64_t expected = 0;
    if (!t.compare_exchange_strong(expected, now, std::memory_order_acq_rel))
      continue;  // a request for this page is already out
    if (received.test(hp)) {
      // Placed (or left a hole) between our check and the publish: take the fault time back,
      // no request; a hole has no placement that woke this thread, so place it here.
      uint64_t mine = now;
      t.compare_exchange_strong(mine, 0, std::memory_order_acq_rel);
      if (!place_locally()) return PollResult::kIdle;
      continue;
    }
    state_.outstanding.fetch_add(1, std::memory_order_relaxed);
    requests[nreq++] = {make_header(FrameType::kRequest, static_cast<uint32_t>(b),
                                    hp * uint64_t{hp_size}),
                        nullptr};
  }
  // While the link is broken the fault time stays recorded: request_again() asks for it later.
  if (!post_requests(requests, nreq)) return PollResult::kIdle;
  return PollResult::kBusy;
}

}  // namespace tern::engine
