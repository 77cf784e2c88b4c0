// libFuzzer target: postcopy recovery's control messages (dataplane/engine/resync.h), as a
// source's resume and a destination's resync deliver them: the destination's check of the
// first message (kResume, control type 11, carrying the recovery token), then the source's
// intake of the destination's answer (kReceivedBitmap 12 per block, kResumeAck 13; kKeepalive
// 14 or anything else there is refused) over the fixed fuzz layout's dirty bitmap.
// Input: records of [u8 type][u8 round][u16 payload length LE][payload]; the first is the
// resume. What must hold: nothing is accepted out of order or twice, and when the intake
// completes, the dirty bitmap holds exactly the pages the bitmaps did not (missing() counts
// them), each accepted bitmap encodes back to its payload (bits past the block cleared).
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "dataplane/engine/resync.h"
#include "tests/fuzz/fuzz_layouts.h"

namespace {

using namespace tern;

constexpr uint64_t kToken = 0x0123456789abcdefull;

bool next_record(const uint8_t*& data, size_t& size, engine::ControlMessage& m) {
  if (size < 4) return false;
  m.type = static_cast<ControlType>(data[0]);
  m.round = data[1];
  size_t len = static_cast<size_t>(data[2]) | static_cast<size_t>(data[3]) << 8;
  data += 4, size -= 4;
  if (len > size) len = size;
  m.payload.assign(data, data + len);
  data += len, size -= len;
  return true;
}

// The payload as the destination would have encoded it: its bits within the block only.
std::vector<uint8_t> masked(const std::vector<uint8_t>& payload, size_t bits) {
  std::vector<uint8_t> out(payload);
  for (size_t i = bits; i < out.size() * 8; ++i) out[i / 8] &= static_cast<uint8_t>(~(1u << (i % 8)));
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  engine::ControlMessage m;
  if (!next_record(data, size, m)) return 0;
  // The destination's side: a wrong type, size or token is refused with a reason.
  const Status resume = engine::check_resume(m, kToken);
  if (!resume.is_ok() && resume.message().empty()) std::abort();
  if (resume.is_ok()) {
    auto t = engine::decode_token(m.payload);
    if (!t || *t != kToken || m.type != ControlType::kResume) std::abort();
  }

  // The source's side.
  const Layout layout = fuzz::default_layout();
  std::vector<uint32_t> page_sizes;
  std::vector<uint64_t> sizes;
  for (const BlockInfo& b : layout.blocks) page_sizes.push_back(b.host_page_size), sizes.push_back(b.size);
  MigrationBitmap dirty(page_sizes, sizes);
  dirty.set_all();
  engine::ResyncIntake intake(dirty);
  std::vector<bool> seen(dirty.blocks(), false);
  while (next_record(data, size, m)) {
    auto done = intake.take(m);
    if (!done) {
      if (done.status().message().empty()) std::abort();
      return 0;  // the resume fails here
    }
    if (*done) {
      for (bool s : seen)
        if (!s) std::abort();  // completed without a block's bitmap
      if (intake.missing() != dirty.dirty_host_pages()) std::abort();
      return 0;
    }
    if (m.type != ControlType::kReceivedBitmap || m.round >= seen.size() || seen[m.round])
      std::abort();  // accepted out of order or twice
    seen[m.round] = true;
    // Round trip: what the destination holds is the complement of the block's dirty bits.
    const AtomicBitmap& d = dirty.block(m.round);
    AtomicBitmap received(d.size());
    for (size_t i = 0; i < d.size(); ++i)
      if (!d.test(i)) received.set(i);
    if (engine::encode_received(received) != masked(m.payload, d.size())) std::abort();
  }
  return 0;
}
