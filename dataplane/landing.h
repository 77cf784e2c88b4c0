// Where received page payloads land: the destination's one placement authority. A plain table
// (no virtual calls) that a receiving channel asks for every kPage frame, and the engine's
// receiver for every kZero frame. It holds the rules, so that no transport re-implements them:
//   resolve()        (block, offset, length) -> address, or the reason it is refused;
//   copy*()          how payload bytes are written there (streaming into guest RAM, memcpy into
//                    a staging page);
//   ends_batch()     when poll_rx must return so that the engine places a staged host page;
//   remote_writable() what a transport may expose to a peer's remote writes (RDMA grants);
//   land_zero*()     what a zero run or range writes (nothing, where memory is still fresh).
// The engine decides when to place (receiver.cc); the landing says where bytes go.
//
// Modes. kDirect (precopy): payloads land in guest RAM at their final address, copied past the
// caches (dataplane/page_copy.h); the guest does not run here yet. kStaged (postcopy, S2):
// payloads land in the channel's staging host page at the frame's offset within its host page,
// and the engine installs the whole host page at once (UFFDIO_COPY, or zero placement).
//
// Direct landing into a block with a file (BlockLanding::file) writes the payload with pwrite:
// on tmpfs each 4 KiB page written through a mapping costs a fault, and the kernel zeroes the
// page before the copy overwrites it; pwrite does neither (256 MiB in 4 KiB pages: 0.11 CPU-s
// through the mapping, 0.07 with pwrite of 64 KiB runs from a buffer). The page is in the
// file, so in every mapping of it, when the call returns. Falls back to stores if it fails.
//
// kPageCache (postcopy, zero-copy placement for file-backed guest RAM, issue 12 item 4): a
// block whose BlockLanding names tern's own MAP_SHARED mapping of its memfd/hugetlbfs file
// (dataplane/page_cache_view.h) lands payloads at their final offset in that mapping, i.e. in
// the page cache, while the guest's mapping of the same file (registered with userfaultfd for
// missing and minor faults) has no entry for the page: a guest thread that touches it waits
// until the engine installs the whole host page with UFFDIO_CONTINUE (S2), and no second copy
// is made. A zero run writes nothing (the page was a hole at the switch: it reads as zero).
// A host page is written by one channel only: the first frame of a host page takes it for this
// landing's channel (a bit in BlockLanding::taken); frames of a host page another channel took,
// or that is in place already (a duplicate answer), land in the staging page as in a sink, so
// that no late copy overwrites what the guest wrote since. owns() tells the engine whether to
// install; release() after it. Transports need no change: they only call the methods below.
//
// Threads: set up (and switched, set_staging) by the engine while the channel is quiescent;
// then read by the channel's worker only. Per-frame calls allocate nothing, throw nothing and
// log nothing; refusal() builds a message and is called only when a channel fails.
#pragma once

#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/page_copy.h"
#include "dataplane/status.h"
#include "dataplane/wire.h"

namespace tern {

struct BlockLanding {
  uint8_t* base = nullptr;  // guest RAM of the block on this host
  uint64_t size = 0;
  uint32_t host_page_size = 0;
  // kPageCache in staged landing: tern's own mapping of the block's file, and the host pages
  // some channel has taken (or that were in place before postcopy). nullptr = kStaged.
  uint8_t* page_cache = nullptr;
  AtomicBitmap* taken = nullptr;
  // Direct landing into a 4 KiB block whose RAM is a tmpfs file that the guest maps elsewhere
  // (a VMM's memfd): the file and where `base` starts in it; -1 = stores through `base`.
  int file = -1;
  uint64_t file_offset = 0;
};

// Why resolve() refused a frame.
enum class LandingRefusal : uint8_t {
  kNone = 0,
  kNoBlock,          // block index past the landing's blocks
  kUnaligned,        // offset or length not a whole number of target pages (zero ranges: of
                     // host pages), or length 0
  kOutsideBlock,     // [offset, offset + length) runs past the end of the block
  kCrossesHostPage,  // the frame spans two host pages (a host page is placed whole: S2)
};

// The part of a registered region a peer may write (remote_writable); length 0 = refused.
struct WritableSpan {
  uint8_t* base = nullptr;  // first writable byte (inside the frame's block)
  uint64_t offset = 0;      // base's offset in the block
  uint64_t length = 0;
};

class Landing {
 public:
  enum class Mode : uint8_t { kDirect, kStaged, kPageCache };  // see the header comment

  Landing() = default;
  explicit Landing(std::vector<BlockLanding> blocks) : blocks_(std::move(blocks)) {
    for (const BlockLanding& b : blocks_) files_ = files_ || b.file >= 0;
  }

  // Postcopy: page payloads land in `staging` (one host page, of the largest host page size)
  // at the frame's offset within its host page. nullptr returns to direct landing.
  void set_staging(uint8_t* staging) { staging_ = staging; }
  uint8_t* staging() const { return staging_; }
  bool staged() const { return staging_ != nullptr; }
  // How frames of block b land (b must be a block of the landing).
  Mode mode(uint32_t b) const {
    if (!staged()) return Mode::kDirect;
    return blocks_[b].page_cache != nullptr ? Mode::kPageCache : Mode::kStaged;
  }

  // Address for the payload of a kPage frame, or nullptr if the frame does not lie inside one
  // host page of one block, or (direct landing) is not a page run of a 4 KiB block (a hostile
  // or corrupt peer): the channel must then fail, with
  // refusal(h, *why). Nothing may be written for a refused frame.
  uint8_t* resolve(const FrameHeader& h, LandingRefusal* why = nullptr) const {
    const LandingRefusal r = check(h);
    if (r != LandingRefusal::kNone) {
      if (why != nullptr) *why = r;
      return nullptr;
    }
    const BlockLanding& b = blocks_[h.block];
    if (!staging_) return b.base + h.offset;
    if (b.page_cache != nullptr && take(h)) return b.page_cache + h.offset;
    return staging_ + h.offset % b.host_page_size;
  }
  // kPageCache: whether frame h's host page is this landing's to install (taken by its first
  // frame here; not a duplicate of a page another channel took or placed).
  bool owns(uint32_t block, uint64_t host_page) const {
    return owned_block_ == static_cast<int64_t>(block) && owned_page_ == host_page;
  }
  // kPageCache: the owned host page is installed; frames for it are duplicates from now on.
  void release() { owned_block_ = -1; }
  // The protocol error for a frame resolve() refused with `why`: names the frame and the rule.
  // Cold path (allocates); the channel prefixes its own name.
  Status refusal(const FrameHeader& h, LandingRefusal why) const;

  // Writes n payload bytes of a resolved frame at dst (inside what resolve returned). Direct
  // landing streams past the caches (page_copy.h), ordered before this thread's later stores on
  // return; a staging page, installed at once, is copied normally.
  void copy(uint8_t* dst, const uint8_t* src, size_t n) const {
    if (staged())
      std::memcpy(dst, src, n);
    else if (!files_ || !write_file(dst, src, n))
      copy_streaming(dst, src, n);
  }
  // The same for one fragment of a frame that arrives in pieces: no fence per fragment (a fence
  // per 8 KiB stalled the dpdk receiver). Call end_fragments() after the frame's last fragment,
  // before the frame is reported.
  void copy_fragment(uint8_t* dst, const uint8_t* src, size_t n) const {
    if (staged())
      std::memcpy(dst, src, n);
    else if (!files_ || !write_file(dst, src, n))
      copy_streaming_unfenced(dst, src, n);
  }
  // Whether the payload of frame h (resolved) lands by a write into its block's file, through
  // copy*(): a transport that reads payloads straight into place (tcp) reads this one into a
  // buffer and copies it from there instead.
  bool lands_in_file(const FrameHeader& h) const {
    return files_ && !staged() && blocks_[h.block].file >= 0;
  }
  // Orders the streamed stores of earlier copy_fragment() calls. Fences in every mode: the
  // engine may have switched the landing between two fragments of one frame.
  static void end_fragments() { streaming_fence(); }

  // Host-page batching: true when poll_rx must return right after frame h, so that the engine
  // places the staged host page before the next page frame reuses the staging buffer: in
  // staged landing, after the last frame (page or zero) of a host page.
  bool ends_batch(const FrameHeader& h) const {
    const auto t = static_cast<FrameType>(h.type);
    return staged() && (t == FrameType::kPage || t == FrameType::kZero) &&
           (h.flags & kFlagHostPageEnd);
  }

  // Whether a transport may let the peer write into the landing's memory at all (RDMA direct
  // placement): only where payloads land at their final address, which no guest reads yet.
  bool accepts_remote_writes() const { return !staged(); }
  // Of a registered region [reg, reg + reg_len) (a transport's memory registration), the part
  // the peer may write, given frame h that resolves into it: the region clipped to h's block.
  // Refused (length 0) when remote writes are not accepted, h does not resolve, or the region
  // does not hold all of h's bytes. Per grant, not per frame.
  WritableSpan remote_writable(const FrameHeader& h, const uint8_t* reg, uint64_t reg_len) const;

  // A zero run (a kZero frame) lands: it must lie where a page frame could (kNone, or the reason
  // it is refused: nothing written). Fresh memory reads as zero, so nothing is written unless
  // `held_data` says the bytes it covers may hold an earlier page (direct: the host page was
  // received before; staged: the staging buffer held another page).
  // kPageCache: takes the host page like a page frame and writes nothing (a hole at the switch,
  // it reads as zero).
  LandingRefusal land_zero(const FrameHeader& h, bool held_data) const {
    const LandingRefusal r = check(h);
    if (r != LandingRefusal::kNone) return r;
    uint8_t* dst = resolve(h);  // kPageCache: takes the host page (or sinks a duplicate)
    if (held_data && mode(h.block) != Mode::kPageCache) std::memset(dst, 0, h.length);
    return r;
  }

  // A zero range (a kZero frame over whole host pages: memory the source never populated)
  // lands in direct landing: it must lie on host-page boundaries inside one block (kNone, or
  // the reason it is refused: nothing written). Host page p of the range is cleared only when
  // held_data(p) says it may hold an earlier page; the rest is fresh and left untouched.
  template <typename HeldData>
  LandingRefusal land_zero_range(const FrameHeader& h, HeldData&& held_data) const {
    const LandingRefusal r = check_range(h);
    if (r != LandingRefusal::kNone) return r;
    const BlockLanding& b = blocks_[h.block];
    for (uint64_t off = h.offset; off < h.offset + h.length; off += b.host_page_size)
      if (held_data(off / b.host_page_size)) std::memset(b.base + off, 0, b.host_page_size);
    return r;
  }

  const std::vector<BlockLanding>& blocks() const { return blocks_; }

 private:
  // A zero range: whole host pages of one block.
  LandingRefusal check_range(const FrameHeader& h) const {
    if (h.block >= blocks_.size()) return LandingRefusal::kNoBlock;
    const BlockLanding& b = blocks_[h.block];
    const uint64_t hp = b.host_page_size;
    if (h.length == 0 || h.offset % hp != 0 || h.length % hp != 0)
      return LandingRefusal::kUnaligned;
    if (h.offset >= b.size || h.length > b.size - h.offset) return LandingRefusal::kOutsideBlock;
    return LandingRefusal::kNone;
  }

  LandingRefusal check(const FrameHeader& h) const {
    if (h.block >= blocks_.size()) return LandingRefusal::kNoBlock;
    const BlockLanding& b = blocks_[h.block];
    if (h.length == 0 || (h.offset % kTargetPageSize) != 0 || (h.length % kTargetPageSize) != 0)
      return LandingRefusal::kUnaligned;
    if (h.offset >= b.size || h.length > b.size - h.offset) return LandingRefusal::kOutsideBlock;
    const uint64_t hp = b.host_page_size;
    if (h.length > hp - h.offset % hp && !direct_page_run(h, b))
      return LandingRefusal::kCrossesHostPage;
    return LandingRefusal::kNone;
  }

  // A page run (wire.h, kLayoutAckPageRuns): a kPage frame over whole 4 KiB host pages, taken
  // in direct landing only (staged landing places one host page at a time: S2).
  bool direct_page_run(const FrameHeader& h, const BlockLanding& b) const {
    return !staged() && static_cast<FrameType>(h.type) == FrameType::kPage &&
           b.host_page_size == kTargetPageSize && h.length <= kMaxPageRun;
  }

  // Direct landing: writes [dst, dst + n) of a block with a file through the file; false if dst
  // is in no such block or the write failed (then the caller stores all n bytes).
  bool write_file(uint8_t* dst, const uint8_t* src, size_t n) const;

  // kPageCache: takes h's host page for this landing unless another frame did; true if it is
  // this landing's (now or already).
  bool take(const FrameHeader& h) const {
    const BlockLanding& b = blocks_[h.block];
    const uint64_t hp = h.offset / b.host_page_size;
    if (owns(h.block, hp)) return true;
    if (b.taken->test_and_set(hp)) return false;
    owned_block_ = h.block;
    owned_page_ = hp;
    return true;
  }

  std::vector<BlockLanding> blocks_;
  bool files_ = false;  // some block has a file (fixed)
  uint8_t* staging_ = nullptr;
  // kPageCache: the host page this landing's channel took and has not installed yet (one at a
  // time: S2). Written by resolve() on the channel's worker, which alone uses this landing.
  mutable int64_t owned_block_ = -1;
  mutable uint64_t owned_page_ = 0;
};

}  // namespace tern
