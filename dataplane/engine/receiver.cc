#include "dataplane/engine/receiver.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>

namespace tern::engine {

namespace {
constexpr size_t kBurst = 32;
}

ReceiverPoller::ReceiverPoller(RecvState& state, Channel* channel)
    : state_(state), channel_(channel), staged_landing_(state.direct.blocks()) {
  channel_->set_landing(&state_.direct);
  if (const ChannelKeys* keys = channel_->keys()) {
    opener_ = std::make_unique<MarkerOpener>(keys->recv);
    if (state_.page_integrity) tags_ = std::make_unique<PageTagCheck>(*opener_);
    if (channel_->index() >= kFirstBulkChannel) {  // test hooks (marker_tamper.h)
      round_end_tamper_.arm(take_marker_tamper(MarkerKind::kRoundEnd));
      if (tags_) page_tamper_ = take_marker_tamper(MarkerKind::kPage);
    } else if (tags_) {
      page_tamper_ = take_marker_tamper(MarkerKind::kUrgentPage);
    }
  }
}

ReceiverPoller::~ReceiverPoller() {
  if (staging_.buffer) munmap(staging_.buffer, kHugePage);
}

void ReceiverPoller::fail(Status s) {
  if (failed_.load(std::memory_order_relaxed)) return;
  error_ = Status(s.code(), "channel " + std::to_string(channel_->index()) + ": " + s.message());
  failed_.store(true, std::memory_order_release);
}

void ReceiverPoller::handle_marker(const FrameHeader& outer, uint8_t* payload) {
  if (tags_ && is_sealed_frame(outer) && outer.block == kMarkerTagsNext && payload &&
      outer.length == kSealedMarkerBytes) {
    if (page_tamper_ == MarkerTamper::kReplay) {  // test-only: this tag comes again
      replay_outer_ = outer;
      std::memcpy(replay_tag_, payload, sizeof(replay_tag_));
    }
    if (!tags_->keep(outer, payload))
      fail(Status(Code::kDenied, "page tag failed authentication on channel " +
                                     std::to_string(channel_->index()) +
                                     ": a second tag before the page frame of the first "
                                     "(replayed, or its frame dropped on the way)"));
    return;
  }
  if (is_sealed_frame(outer) && payload != nullptr && outer.length == kSealedMarkerBytes)
    round_end_tamper_.before_open(payload);
  for (uint8_t* frame = payload; frame != nullptr; frame = round_end_tamper_.take_replay()) {
    FrameHeader inner;
    const uint64_t seq = opener_->opened();
    const auto why = opener_->open(outer, frame, nullptr, 0, &inner);
    if (why != MarkerOpener::Refusal::kNone)
      return fail(Status(Code::kDenied, MarkerOpener::describe("round end", why, seq,
                                                                channel_->index())));
    if (static_cast<FrameType>(inner.type) != FrameType::kRoundEnd)
      return fail(Status(Code::kProtocol, "sealed marker of type " +
                                              std::to_string(inner.type) + " on channel " +
                                              std::to_string(channel_->index())));
    last_round_end_.store(inner.round, std::memory_order_release);
  }
}

bool ReceiverPoller::verify_page(const RxFrame& f) {
  const FrameHeader& h = f.hdr;
  if (!tags_) {
    fail(Status(Code::kDenied, "page integrity is on, but channel " +
                                   std::to_string(channel_->index()) + " has no session keys"));
    return false;
  }
  const bool data = static_cast<FrameType>(h.type) == FrameType::kPage;
  if (data && f.data) {  // test-only (marker_tamper.h): this page changed on the way, every time
    const uint64_t key = (uint64_t{h.block} << 40 | h.offset / kTargetPageSize) + 1;
    if (page_tamper_ == MarkerTamper::kFlip) {
      state_.tampered_page.store(key, std::memory_order_relaxed);
      page_tamper_ = MarkerTamper::kNone;
    }
    if (state_.tampered_page.load(std::memory_order_relaxed) == key) f.data[h.length / 2] ^= 0xff;
  }
  const PageTagCheck::Verdict v = tags_->check(h, f.data, /*strict=*/postcopy_);
  if (page_tamper_ == MarkerTamper::kReplay) {  // test-only: its tag delivered again
    (void)tags_->keep(replay_outer_, replay_tag_);
    page_tamper_ = MarkerTamper::kNone;
  }
  RamBlock* rb = state_.blocks[h.block];
  const uint64_t hp_size = rb->host_page_size();
  const uint64_t first = h.offset / hp_size, last = (h.offset + h.length - 1) / hp_size;
  AtomicBitmap& unverified = state_.unverified->block(h.block);
  if (v == PageTagCheck::Verdict::kVerified) {
    // A host page's first frame starts its check afresh; a later frame that fails marks it.
    if (h.offset % hp_size == 0)
      for (uint64_t p = first; p <= last; ++p) unverified.clear(p);
    return true;
  }
  auto refuse = [&](const char* why) {  // cold: the text is built only when the receiver fails
    fail(Status(Code::kDenied, "page integrity: the page frame at block " +
                                   std::to_string(h.block) + " offset " +
                                   std::to_string(h.offset) + " (" + std::to_string(h.length) +
                                   " bytes) on channel " + std::to_string(channel_->index()) +
                                   why));
    return false;
  };
  if (v == PageTagCheck::Verdict::kNoTag) return refuse(" came without its tag");
  if (postcopy_)
    return refuse(" failed authentication: its tag does not open over the bytes received "
                  "(changed, replayed or reordered on the way); it was not placed");
  // Precopy: a page the source's guest wrote while it was sent fails too; it comes again.
  unverified.set_range(first, last + 1);
  state_.counters.unverified_frames.fetch_add(1, std::memory_order_relaxed);
  return true;
}

void ReceiverPoller::enter_postcopy() {
  if (!staging_.buffer) {
    void* p = mmap(nullptr, kHugePage, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      fail(errno_status("staging buffer"));
      return;
    }
    staging_.buffer = static_cast<uint8_t*>(p);
  }
  staging_.reset();
  staged_landing_ = Landing(state_.postcopy_landings());
  staged_landing_.set_staging(staging_.buffer);
  channel_->set_landing(&staged_landing_);
  postcopy_ = true;
}

PollResult ReceiverPoller::poll() {
  if (failed()) return PollResult::kIdle;
  RxFrame frames[kBurst];
  // Short bursts when this worker also reads faults: a fault that comes in just after a burst
  // started waits for all of it (32 placements took 256-512 us, the tail of the fault-latency
  // histogram in BM_PostcopyFaults before the urgent path had a thread of its own).
  const bool waiting = shares_worker_with_faults_ &&
                       (postcopy_ || state_.outstanding.load(std::memory_order_relaxed) > 0);
  size_t n = channel_->poll_rx(frames, waiting ? 2 : kBurst);
  if (n == 0) {
    if (!channel_->error().is_ok() && !failed()) {
      error_ = channel_->error();  // already names the channel
      failed_.store(true, std::memory_order_release);
    }
    return PollResult::kIdle;
  }
  for (size_t i = 0; i < n && !failed(); ++i) handle(frames[i]);
  return PollResult::kBusy;
}

void ReceiverPoller::handle(const RxFrame& f) {
  const FrameHeader& h = f.hdr;
  const auto type = static_cast<FrameType>(h.type);
  if (h.channel != channel_->index()) {
    fail(Status(Code::kProtocol, "frame says channel " + std::to_string(h.channel)));
    return;
  }
  if (opener_ && (type == FrameType::kControl || type == FrameType::kRoundEnd))
    return handle_marker(h, f.data);
  if (type == FrameType::kRoundEnd) {
    last_round_end_.store(h.round, std::memory_order_release);
    return;
  }
  if (type != FrameType::kPage && type != FrameType::kZero) {
    fail(Status(Code::kProtocol, "unexpected frame type " + std::to_string(h.type)));
    return;
  }
  // kPage payloads were checked by the landing; kZero frames are checked here.
  if (Status s = check_page_frame(h, state_.layout); !s.is_ok()) {
    fail(s);
    return;
  }
  if (state_.page_integrity && !verify_page(f)) return;
  const bool zero = type == FrameType::kZero;
  const uint64_t pages = h.length / kTargetPageSize;
  state_.counters.bytes.fetch_add(sizeof(FrameHeader) + (zero ? 0 : h.length),
                                  std::memory_order_relaxed);
  (zero ? state_.counters.zero_pages : state_.counters.normal_pages)
      .fetch_add(pages, std::memory_order_relaxed);
  (postcopy_ ? state_.counters.postcopy_bytes : state_.counters.precopy_bytes)
      .fetch_add(sizeof(FrameHeader) + (zero ? 0 : h.length), std::memory_order_relaxed);
  RamBlock* rb = state_.blocks[h.block];
  const uint64_t hp_size = rb->host_page_size();
  const uint64_t first = h.offset / hp_size;
  const uint64_t last = (h.offset + h.length - 1) / hp_size;  // last host page touched
  if (postcopy_) {
    if (first != last && !zero)  // a page run: precopy only (S2 places one host page)
      return fail(Status(Code::kProtocol, "page run at offset " + std::to_string(h.offset) +
                                              " of block " + std::to_string(h.block) +
                                              " in postcopy"));
    if (first != last) return place_zero_range(h);  // a zero range: whole host pages
    stage(h, zero);
    return;
  }
  // Precopy, direct landing: guest RAM that no host page landed in yet is fresh (zero). A zero
  // range (never-populated memory) clears only host pages that were received and still hold
  // memory here.
  AtomicBitmap& got = state_.received.block(h.block);
  if (zero) {
    const LandingRefusal why =
        first == last
            ? state_.direct.land_zero(h, got.test(first))
            : state_.direct.land_zero_range(
                  h, [&](uint64_t p) { return got.test(p) && rb->populated(p); });
    if (why != LandingRefusal::kNone) return fail(state_.direct.refusal(h, why));
  }
  if (h.flags & kFlagHostPageEnd) got.set_range(first, last + 1);
}

// Postcopy: a run of whole host pages the source never populated, placed with one
// UFFDIO_ZEROPAGE (hugetlb: a zero copy per host page). S2: no host page may be half
// assembled on this channel meanwhile.
void ReceiverPoller::place_zero_range(const FrameHeader& h) {
  if (staging_.block >= 0) {
    fail(Status(Code::kProtocol, "zero range at offset " + std::to_string(h.offset) +
                                     " of block " + std::to_string(h.block) + " while host page " +
                                     std::to_string(staging_.hp) + " of block " +
                                     std::to_string(staging_.block) + " is incomplete"));
    return;
  }
  RamBlock* rb = state_.blocks[h.block];
  const uint32_t hp_size = rb->host_page_size();
  const uint64_t first = h.offset / hp_size, count = h.length / hp_size;
  int rc;
  if (staged_landing_.mode(h.block) == Landing::Mode::kPageCache) {
    // Never populated at the source, holes here (punched at the switch): they stay holes.
    rc = 0;
    for (uint64_t p = first; p < first + count && rc == 0; ++p) {
      state_.taken->block(h.block).set(p);
      rc = state_.leave_hole(h.block, p);
    }
    if (rc != 0) return fail(Status(Code::kIo, "installing a zero page of block '" + rb->name() +
                                                   "': " + std::strerror(-rc)));
    return;
  } else {
    uint8_t* dst = rb->base() + h.offset;
    rc = state_.uffd->zero(dst, h.length, hp_size);
    if (rc == -EEXIST) {
      // Some host page of the run is in place already (a request answered on the urgent
      // channel: the same zeros, the source is stopped): place the rest one by one.
      rc = 0;
      for (uint64_t off = 0; off < h.length && (rc == 0 || rc == -EEXIST); off += hp_size)
        rc = state_.uffd->zero(dst + off, hp_size, hp_size);
    }
  }
  if (rc != 0 && rc != -EEXIST) {
    fail(Status(Code::kIo, "placing zero range at offset " + std::to_string(h.offset) +
                               " of block '" + rb->name() + "': " + std::strerror(-rc)));
    return;
  }
  for (uint64_t p = first; p < first + count; ++p) state_.page_placed(h.block, p);
}

void ReceiverPoller::stage(const FrameHeader& h, bool zero) {
  RamBlock* rb = state_.blocks[h.block];
  const uint32_t hp_size = rb->host_page_size();
  const uint64_t hp = h.offset / hp_size;
  StagingPage& s = staging_;
  if (s.block < 0) {
    s.block = static_cast<int32_t>(h.block);
    s.hp = hp;
    s.host_page_size = hp_size;
  } else if (s.block != static_cast<int32_t>(h.block) || s.hp != hp) {
    // S2: a host page travels wholly on one channel; another page may not start before it ends.
    fail(Status(Code::kProtocol, "frame for host page " + std::to_string(hp) + " of block " +
                                     std::to_string(h.block) + " while host page " +
                                     std::to_string(s.hp) + " of block " +
                                     std::to_string(s.block) + " is incomplete"));
    return;
  }
  const uint32_t in_page = static_cast<uint32_t>(h.offset % hp_size);
  if (zero) {
    // A staging buffer that never held a page is fresh (zero).
    const LandingRefusal why = staged_landing_.land_zero(h, s.buffer_dirty);
    if (why != LandingRefusal::kNone) return fail(staged_landing_.refusal(h, why));
  } else {
    s.all_zero = false;
    s.buffer_dirty = true;
  }
  for (uint32_t t = in_page / kTargetPageSize, e = t + h.length / kTargetPageSize; t < e; ++t) {
    if (!s.have.test(t)) {
      s.have.set(t);
      ++s.target_pages;
    }
  }
  if (s.target_pages == hp_size / kTargetPageSize) place_staged();
}

void ReceiverPoller::place_staged() {
  StagingPage& s = staging_;
  const auto block = static_cast<uint32_t>(s.block);
  RamBlock* rb = state_.blocks[block];
  uint8_t* dst = rb->base() + s.hp * s.host_page_size;
  int rc;
  if (staged_landing_.mode(block) == Landing::Mode::kPageCache) {
    if (!staged_landing_.owns(block, s.hp)) {
      // A duplicate of a page another channel took (its frames went to the staging sink):
      // that channel installs it.
      s.reset();
      return;
    }
    // An all-zero page wrote nothing: its hole stays one unless a thread waits on it.
    rc = s.all_zero ? state_.leave_hole(block, s.hp) : state_.install(block, s.hp, 1, false);
    staged_landing_.release();
    if (rc == 0 && s.all_zero) {
      s.reset();
      return;
    }
  } else {
    rc = s.all_zero ? state_.uffd->zero(dst, s.host_page_size, s.host_page_size)
                    : state_.uffd->copy(dst, s.buffer, s.host_page_size);
  }
  if (rc != 0 && rc != -EEXIST) {
    fail(Status(Code::kIo, std::string("placing host page ") + std::to_string(s.hp) +
                               " of block '" + rb->name() + "': " + std::strerror(-rc)));
    return;
  }
  // EEXIST: the page came twice (a request answered again on the urgent channel while the
  // first copy was still queued) and the other copy is in place; the guest may have written
  // to it since, so this one is dropped.
  if (rc == 0) state_.counters.placed_pages.fetch_add(1, std::memory_order_relaxed);
  state_.page_placed(block, s.hp);
  s.reset();
}

}  // namespace tern::engine
