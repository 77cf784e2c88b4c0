// Page integrity (MigrationParameters::page_integrity, QMP __io.github.tern_page-integrity):
// on a keyed channel the source sends every page frame (kPage, kZero) right after a page tag,
// a sealed marker (marker_seal.h, outer block kMarkerTagsNext) whose inner header is the page
// frame's own and whose GMAC also covers the frame's payload bytes, under the channel's
// per-direction session key and sequence. The destination keeps the tag until its frame has
// landed, then opens it over the header and the bytes where they landed:
// - postcopy: the bytes sit in the channel's staging page (or the page cache) and the check
//   runs before UFFDIO_COPY / UFFDIO_CONTINUE: a page that fails is never placed, the
//   migration fails.
// - precopy: the bytes land straight in guest RAM that does not run yet. A page the source's
//   guest wrote while it was being sent can fail honestly (the tag was made before the
//   transport read the bytes), and such a page is dirty and comes again in a later round (the
//   source sends no page runs then: a tag covers one host page, or part of one); so
//   a failed page is only marked unverified, a verified copy clears the mark, and the
//   migration fails at switchover (before the guest runs here, the source guest resumes) if
//   any page is still unverified; at a switch to postcopy unverified pages are dropped like
//   stale ones and fetched again, checked.
// A missing tag or two tags in a row fail at once; a tag that names another frame is a failed
// check like a changed byte.
//
// Threads: one checker per receiving channel, on the worker that owns it. Data tier: no
// allocation on the normal course.
#pragma once

#include <cstdint>
#include <cstring>

#include "dataplane/engine/marker_seal.h"

namespace tern::engine {

class PageTagCheck {
 public:
  enum class Verdict { kVerified, kFailed, kNoTag };
  // `opener`: the channel's marker opener (round ends share its sequence); outlives this.
  explicit PageTagCheck(MarkerOpener& opener) : opener_(opener) {}
  // A tag arrived (outer header, its kSealedMarkerBytes payload): kept for the next frame.
  // False when a tag is kept already (the frame it tags never came).
  bool keep(const FrameHeader& outer, const uint8_t* payload) {
    if (has_tag_) return false;
    tag_outer_ = outer;
    std::memcpy(tag_, payload, sizeof(tag_));
    has_tag_ = true;
    return true;
  }
  // The page frame `h` whose payload landed at `bytes` (nullptr for kZero). `strict`: a
  // refused tag leaves the opener's sequence where it was (postcopy: the caller fails);
  // otherwise it advances past it (precopy: the page is only marked unverified).
  Verdict check(const FrameHeader& h, const uint8_t* bytes, bool strict) {
    if (!has_tag_) return Verdict::kNoTag;
    has_tag_ = false;
    const bool data = static_cast<FrameType>(h.type) == FrameType::kPage;
    FrameHeader inner;
    const auto why = opener_.open(tag_outer_, tag_, data ? bytes : nullptr,
                                  data ? h.length : 0, &inner, !strict);
    if (why != MarkerOpener::Refusal::kNone || std::memcmp(&inner, &h, sizeof(h)) != 0)
      return Verdict::kFailed;
    return Verdict::kVerified;
  }
  uint8_t* kept_tag() { return has_tag_ ? tag_ : nullptr; }  // test-only tampering

 private:
  MarkerOpener& opener_;
  bool has_tag_ = false;
  FrameHeader tag_outer_{};
  uint8_t tag_[kSealedMarkerBytes];
};

}  // namespace tern::engine
