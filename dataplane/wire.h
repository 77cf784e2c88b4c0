// tern wire format, version 5. Every frame starts with a fixed 32-byte little-endian header;
// `length` payload bytes follow for frame types that carry a payload. The same frames travel
// on every transport (loopback, tcp; rdma and dpdk map them onto their own primitives).
// See docs/wire-protocol.md.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/status.h"

namespace tern {

inline constexpr uint16_t kWireMagic = 0x7e4e;  // "tern"
// 2: kZero may span whole host pages. 3: postcopy recovery (kResume..kKeepalive, the
// kPostcopyStart token). 4: sealed control frames (kSealed) on channels with session keys.
// 5: sealed round ends and page requests (markers), page tags, the TLS handshake in frames
// (kTlsHandshake) on transports without a byte stream.
inline constexpr uint8_t kWireVersion = 5;
inline constexpr uint32_t kTargetPageSize = 4096;
inline constexpr uint32_t kTargetPageShift = 12;
inline constexpr uint32_t kHugePageBytes = 2u << 20;
// Largest payload of a non-page frame (layout, discard list, device state).
inline constexpr uint32_t kMaxControlPayload = 64u << 20;
// Largest payload a channel takes before it is authenticated (hello, handshake): a peer that
// has not proved who it is makes the destination allocate no more than this per connection.
inline constexpr uint32_t kMaxHandshakePayload = 4096;
// Most bytes one kZero frame may cover (a zero range of whole host pages).
inline constexpr uint32_t kMaxZeroRange = 1u << 30;

enum class FrameType : uint8_t {
  kHello = 1,      // first frame on every channel: payload = HelloPayload
  kPage = 2,       // page data: payload = `length` bytes for [offset, offset+length) of `block`
  kZero = 3,       // [offset, offset+length) of `block` is all zeros; no payload. Either target
                   // pages inside one host page, or a zero range: whole host pages, up to
                   // kMaxZeroRange (never populated at the source), flagged kFlagHostPageEnd
  kRoundEnd = 4,   // source: every page of dirty round `round` was sent on this channel
  kRequest = 5,    // destination -> source: please send the host page holding `offset`
  kControl = 6,    // control message; `flags` holds a ControlType, payload per type
};

// Frame flags for kPage / kZero.
inline constexpr uint32_t kFlagUrgent = 1u << 0;        // sent because a guest is waiting
inline constexpr uint32_t kFlagHostPageEnd = 1u << 1;   // last frame of its host page

enum class ControlType : uint32_t {
  kLayout = 1,         // src -> dst: RAM layout (payload: encode_layout)
  kLayoutAck = 2,      // dst -> src: layout accepted
  kRoundAck = 3,       // dst -> src: every bulk channel delivered kRoundEnd(round)
  kPostcopyStart = 4,  // src -> dst: payload = u64 recovery token (kResume), u64 n, n bytes
                       // of discard list (encode_ranges), then device state
  kPostcopyAck = 5,    // dst -> src: stale pages discarded, guest running on destination
  kDeviceState = 6,    // src -> dst: guest device/vCPU state (precopy switchover)
  kComplete = 7,       // src -> dst: nothing more will be sent
  kCompleteAck = 8,    // dst -> src: every page placed, guest running (text "running")
  kError = 9,          // either way: payload = human-readable reason; the migration fails
  kCancel = 10,        // src -> dst: migration cancelled
  // Postcopy recovery (a broken link, both sides postcopy-paused, then a new set of channels):
  kResume = 11,        // src -> dst: first message of the new link; payload = the u64 token
                       // of kPostcopyStart: this link continues that migration
  kReceivedBitmap = 12,  // dst -> src: `round` = block index; payload = the block's received
                         // host pages, one bit each (u64 words, little-endian): the authority
  kResumeAck = 13,     // dst -> src: every block's bitmap sent; pages not in them are missing
  kKeepalive = 14,     // both, in postcopy, every 100 ms: "still here"; a peer silent past
                       // its timeout breaks the link (the migration pauses)
  // The channel handshake (dataplane/toolkit/channel_auth.h), right after the hello, before
  // the channel is handed to the engine; payload: AuthPayload.
  kAuthOffer = 15,     // src -> dst: the source's nonce
  kAuthChallenge = 16, // dst -> src: the destination's nonce and its proof
  kAuthProof = 17,     // src -> dst: the source's proof
  // On a channel with session keys every control message after the handshake travels sealed
  // (engine/frame_seal.h): payload = AEAD(inner header | inner payload) | 16-byte tag.
  kSealed = 18,
  // x509 on transports without a byte stream (rdma, dpdk; toolkit/channel_tls.h): TLS 1.3
  // handshake bytes, after the hello and before kAuthOffer; payload: at most
  // kMaxHandshakePayload bytes of TLS records (a longer flight is cut into several frames).
  kTlsHandshake = 19,
};

// kLayout's `round` field: flags about the migration the layout starts.
// kLayoutPrecopyOnly: postcopy-ram is off, no switch to postcopy will follow, so the
// destination may let the transport register guest RAM for remote writes (rdma direct
// placement; registering pins pages, which postcopy needs missing). A source that does not set
// it (0) leaves guest RAM unregistered.
inline constexpr uint32_t kLayoutPrecopyOnly = 1u << 0;
// kLayoutPageIntegrity: the source tags every page frame (engine/page_integrity.h) and asks
// the destination to check them; a destination that does not want the same refuses.
inline constexpr uint32_t kLayoutPageIntegrity = 1u << 1;

// kLayoutAck's `round` field: what the destination takes beyond version 3's frames.
// kLayoutAckPageRuns: in precopy a kPage frame may cover several whole host pages of a block
// of 4 KiB host pages (a page run, at most kMaxPageRun bytes), so that a stream transport
// reads it straight into guest RAM. A destination that does not set it (0) gets one frame per
// 4 KiB host page; a source never sends runs in postcopy (S2, S3 name single host pages).
inline constexpr uint32_t kLayoutAckPageRuns = 1u << 0;
// kLayoutAckPageIntegrity: this destination checks page tags (it answers a layout with
// kLayoutPageIntegrity). A source that asked for them refuses an ack without it.
inline constexpr uint32_t kLayoutAckPageIntegrity = 1u << 1;
inline constexpr uint32_t kMaxPageRun = 1u << 20;

#pragma pack(push, 1)
struct FrameHeader {
  uint16_t magic;    // kWireMagic
  uint8_t version;   // kWireVersion
  uint8_t type;      // FrameType
  uint32_t block;    // RAM block index in the layout (page, zero, request)
  uint64_t offset;   // byte offset inside the block, target-page aligned
  uint32_t length;   // payload bytes (kPage, kHello, kControl) or bytes covered (kZero)
  uint32_t flags;    // kFlag* for pages, ControlType for kControl
  uint32_t round;    // dirty round the data belongs to
  uint32_t channel;  // sending channel index (checked against the receiving channel)
};
#pragma pack(pop)
static_assert(sizeof(FrameHeader) == 32);

struct HelloPayload {
  uint32_t channel_index;  // 0 = control, 1 = urgent, 2.. = bulk
  uint32_t channel_count;
  uint64_t session_id;     // same on every channel of one migration
};

// kAuth* payload: a fresh random nonce and/or an HMAC-SHA256 proof (zero where unused).
struct AuthPayload {
  uint8_t nonce[32];
  uint8_t mac[32];
};
static_assert(sizeof(AuthPayload) == 64);

// One RAM block as the layout announces it.
struct BlockInfo {
  std::string name;
  uint64_t size = 0;             // bytes, a multiple of host_page_size
  uint32_t host_page_size = 0;   // 4096 or 2 MiB
};

struct Layout {
  std::vector<BlockInfo> blocks;
  uint64_t total_bytes() const;
};

// A [offset, offset+length) byte range of one block.
struct Range {
  uint32_t block;
  uint64_t offset;
  uint64_t length;
};

FrameHeader make_header(FrameType type, uint32_t block = 0, uint64_t offset = 0,
                        uint32_t length = 0, uint32_t flags = 0, uint32_t round = 0,
                        uint32_t channel = 0);

// Checks magic, version, type and that `length` is within bounds for the type.
// Cheap enough for the data path (no allocation).
Status check_header(const FrameHeader& h);

// Checks that a kPage/kZero/kRequest frame addresses target pages that lie inside one host
// page of one block of `layout`, or, for kZero, whole host pages of one block (a zero range),
// or, for kPage, whole host pages of a 4 KiB block up to kMaxPageRun (a page run: precopy
// only, which the receiver checks). Anything else is a protocol error naming the bad field.
Status check_page_frame(const FrameHeader& h, const Layout& layout);

std::vector<uint8_t> encode_layout(const Layout& layout);
Result<Layout> decode_layout(const uint8_t* data, size_t size);
std::vector<uint8_t> encode_ranges(const std::vector<Range>& ranges);
Result<std::vector<Range>> decode_ranges(const uint8_t* data, size_t size, const Layout& layout);

}  // namespace tern
