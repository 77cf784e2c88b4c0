// Zero-copy postcopy placement for file-backed guest RAM (issue 12, item 4): tern's own shared
// mapping of a block's file (memfd, hugetlbfs), through which received pages are written into
// the page cache while the guest's mapping of the same file, registered with userfaultfd for
// missing and minor faults, has no entry for them; Userfault::install (UFFDIO_CONTINUE) then
// maps the page cache page into the guest's mapping: no staging buffer, no second copy.
//
// The guest's mapping is the RamBlock's own (a thread or KVM guest in this process), or, for
// a VMM in another process, its mapping of the same file; this view is never registered.
// Threads: created and destroyed by the destination's control thread while no worker runs;
// base() and allocate() from any worker.
#pragma once

#include <cstdint>
#include <memory>

#include "dataplane/ram_block.h"
#include "dataplane/status.h"

namespace tern {

class PageCacheView {
 public:
  // Maps the file behind `block` (block.fd() >= 0) a second time, shared, whole. The block
  // (and its descriptor) must outlive the view.
  static Result<std::unique_ptr<PageCacheView>> map(const RamBlock& block);
  ~PageCacheView();
  PageCacheView(const PageCacheView&) = delete;
  PageCacheView& operator=(const PageCacheView&) = delete;

  // Byte `offset` of the block through this mapping.
  uint8_t* base() const { return base_; }
  // Makes [offset, offset + len) (whole host pages) present in the page cache without writing
  // through any mapping: holes become zero-filled pages, pages with data are left as they are
  // (fallocate). What install() needs for a page that no payload was written into. 0 or -errno.
  int allocate(uint64_t offset, uint64_t len) const;

 private:
  PageCacheView(uint8_t* base, uint64_t size, int fd, uint64_t fd_offset)
      : base_(base), size_(size), fd_(fd), fd_offset_(fd_offset) {}
  uint8_t* base_;
  uint64_t size_;
  int fd_;  // borrowed from the block
  uint64_t fd_offset_;
};

}  // namespace tern
