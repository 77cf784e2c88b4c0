// libFuzzer target: the VMM attach protocol's decoders (attach/protocol.h). The input is a
// stream of messages, each a 16-byte header and its payload, as ternd or libtern-vmm reads
// them. Each header is checked; a good one's payload goes to its type's decoder (both the
// request and the reply decoders of that type). A decoded message must encode back to bytes that
// decode to the same fields; every refusal must name something.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>

#include "attach/protocol.h"

namespace {

using namespace tern;
using namespace tern::attach;

template <typename T>
void refusal_named(const Result<T>& r) {
  if (!r.is_ok() && r.status().message().empty()) std::abort();
}

void check_payload(MsgType type, View p) {
  switch (type) {
    case MsgType::kHello: {
      auto h = decode_hello(p);
      refusal_named(h);
      if (h) {
        auto again = decode_hello(encode(*h));
        if (!again || again->capabilities != h->capabilities ||
            again->description != h->description || again->role != h->role)
          std::abort();
      }
      refusal_named(decode_hello_reply(p));
      break;
    }
    case MsgType::kRegion: {
      auto r = decode_region(p);
      refusal_named(r);
      if (r) {
        auto again = decode_region(encode(*r));
        if (!again || again->size != r->size || again->name != r->name ||
            again->vmm_addr != r->vmm_addr || r->name.empty())
          std::abort();
      }
      break;
    }
    case MsgType::kReady: {
      auto r = decode_ready(p);
      refusal_named(r);
      if (fds_expected(type, p) > 2) std::abort();
      break;
    }
    case MsgType::kSetPenalty: refusal_named(decode_penalty(p)); break;
    case MsgType::kRingCounters:
      refusal_named(decode_u32_pair(p));
      refusal_named(decode_counters(p));
      break;
    case MsgType::kFreeTake: {
      auto f = decode_free_ranges(p);
      refusal_named(f);
      if (f && encode(*f).size() != p.size()) std::abort();
      break;
    }
    case MsgType::kVerify:
      refusal_named(decode_u32_pair(p));
      refusal_named(decode_verify(p));
      break;
    case MsgType::kDirtySync: refusal_named(decode_u64(p)); break;
    case MsgType::kError:
      if (decode_error(p).message.empty()) std::abort();
      break;
    default: break;
  }
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  View in(data, size);
  while (in.size() >= kHeaderSize) {
    Result<Header> h = decode_header(in.first(kHeaderSize));
    refusal_named(h);
    if (!h) return 0;  // framing lost: a reader closes the connection here
    in = in.subspan(kHeaderSize);
    if (h->length > in.size()) return 0;  // the rest never arrives
    check_payload(h->type, in.first(h->length));
    in = in.subspan(h->length);
  }
  return 0;
}
