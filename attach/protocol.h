// The VMM attach protocol's messages (docs/attach-protocol.md): the 16-byte header and each
// payload, encoded little-endian and decoded with every length and count checked against the
// bytes there are. Pure functions on byte buffers, no I/O (attach/channel.h moves them), so the
// decoders can be fuzzed (tests/fuzz/attach_message_fuzz.cc).
//
// Threads: no shared state; any thread.
#pragma once

#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "dataplane/status.h"

namespace tern::attach {

inline constexpr uint32_t kMagic = 0x564e5254;  // "TRNV" little-endian
inline constexpr uint16_t kVersion = 1;          // the only version this build speaks
inline constexpr size_t kHeaderSize = 16;
inline constexpr uint32_t kMaxPayload = 64u << 20;
inline constexpr size_t kMaxFds = 4;
inline constexpr uint32_t kMaxRegions = 64;
inline constexpr size_t kMaxName = 256;  // region names and descriptions, bytes

enum class MsgType : uint16_t {
  kHello = 1,
  kRegion = 2,
  kReady = 3,
  kPause = 16,
  kResume = 17,
  kDirtyStart = 18,
  kDirtyStop = 19,
  kDirtySync = 20,
  kSaveState = 21,
  kLoadState = 22,
  kSetPenalty = 23,
  kRingCounters = 24,
  kLimitTracking = 25,
  kFreeStart = 26,
  kFreeTake = 27,
  kFreeStop = 28,
  kVerify = 29,
  kDetach = 30,
  kReply = 64,
  kError = 65,
};
// "PAUSE", or "type 99" for an unknown one.
std::string type_name(uint16_t type);
bool known_type(uint16_t type);

enum Capability : uint64_t {
  kCapDirtyLog = 1u << 0,
  kCapState = 1u << 1,
  kCapPostcopy = 1u << 2,
  kCapThrottle = 1u << 3,
  kCapFreePages = 1u << 4,
  kCapSelfCheck = 1u << 5,
  // Destination, with kCapPostcopy: the VMM's userfaultfd has minor faults for its regions'
  // memory (UFFD_FEATURE_MINOR_SHMEM for 4 KiB regions, _MINOR_HUGETLBFS for 2 MiB ones), so
  // ternd may register them MISSING|MINOR and place pages zero-copy with UFFDIO_CONTINUE.
  kCapMinorFaults = 1u << 6,
};
inline constexpr uint64_t kAllCapabilities = (1u << 7) - 1;
// "dirty-log" for one bit; "dirty-log,state" for a set.
std::string capability_names(uint64_t caps);

enum class Role : uint32_t { kSource = 1, kDestination = 2 };

// READY's fd flags: which fds follow, in this order.
inline constexpr uint32_t kReadyBitmapFd = 1u << 0;
inline constexpr uint32_t kReadyUffd = 1u << 1;

struct Header {
  uint16_t version = kVersion;
  MsgType type = MsgType::kReply;
  uint32_t length = 0;
  uint32_t id = 0;
};
void encode_header(const Header& h, uint8_t out[kHeaderSize]);
// Checks magic, version, type and length; the error says which is wrong.
Result<Header> decode_header(std::span<const uint8_t> bytes);

struct Hello {
  uint16_t min_version = kVersion;
  uint16_t max_version = kVersion;
  Role role = Role::kSource;
  uint64_t capabilities = 0;
  uint32_t vcpus = 0;
  std::string description;
};
struct HelloReply {
  uint16_t version = kVersion;
  uint64_t capabilities = 0;
};
struct Region {
  uint64_t guest_phys_addr = 0;
  uint64_t size = 0;
  uint64_t fd_offset = 0;
  uint64_t vmm_addr = 0;
  uint32_t host_page_size = 0;
  std::string name;
};
struct Ready {
  uint32_t fd_flags = 0;
};
struct Penalty {
  uint32_t vcpu = 0;
  uint64_t microseconds = 0;
};
struct Counters {  // DirtyRingCounters in wire order
  uint64_t values[8] = {};
};
struct FreeRange {
  uint32_t region = 0;
  uint64_t offset = 0;
  uint64_t length = 0;
};
struct VerifyResult {
  uint64_t pages_checked = 0;
  uint64_t mismatches = 0;
  uint64_t touched_checked = 0;
  uint64_t touched_mismatches = 0;
  std::string first_mismatch;
};
struct ErrorBody {
  Code code = Code::kInternal;
  std::string message;
};

using Bytes = std::vector<uint8_t>;
using View = std::span<const uint8_t>;

Bytes encode(const Hello& m);
Bytes encode(const HelloReply& m);
Bytes encode(const Region& m);
Bytes encode(const Ready& m);
Bytes encode(const Penalty& m);
Bytes encode(const Counters& m);
Bytes encode(const std::vector<FreeRange>& m);
Bytes encode(const VerifyResult& m);
Bytes encode(const ErrorBody& m);
Bytes encode_u32_pair(uint32_t a, uint32_t b);  // LIMIT_TRACKING, RING_COUNTERS, VERIFY args
Bytes encode_u64(uint64_t v);                     // DIRTY_SYNC's reply

Result<Hello> decode_hello(View p);
Result<HelloReply> decode_hello_reply(View p);
Result<Region> decode_region(View p);
Result<Ready> decode_ready(View p);
Result<Penalty> decode_penalty(View p);
Result<Counters> decode_counters(View p);
Result<std::vector<FreeRange>> decode_free_ranges(View p);
Result<VerifyResult> decode_verify(View p);
Result<uint64_t> decode_u64(View p);
Result<std::pair<uint32_t, uint32_t>> decode_u32_pair(View p);
// Never fails: a body too short to hold a code reads as an internal error saying so.
ErrorBody decode_error(View p);

// Fds a message of `type` must carry (READY: one per flag set; REGION: 1; else 0).
size_t fds_expected(MsgType type, View payload);

// Dirty bitmap geometry: 64-bit words per region (one bit per 4 KiB target page), and the
// word index where each region starts (regions in attach order, each on a word boundary).
uint64_t bitmap_words(uint64_t region_size);
uint64_t bitmap_bytes(const std::vector<uint64_t>& region_sizes);

}  // namespace tern::attach
