// A RAM block: one contiguous mapping of guest memory with one host page size (4 KiB anonymous
// or 2 MiB hugetlb), or a shared mapping of a file (memfd, hugetlbfs). Target pages are always
// 4 KiB. Owns its mapping (and its file descriptor, if any).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "dataplane/status.h"

namespace tern {

inline constexpr uint32_t kSmallPage = 4096;
inline constexpr uint32_t kHugePage = 2u << 20;

// What guest RAM is made of: anonymous memory (postcopy placement copies, UFFDIO_COPY) or a
// memfd (RamBlock::create_shared): file-backed, so it can be handed to another process (fd(),
// a VMM's RAM that ternd maps a second time), and its postcopy placement can come from the
// page cache (UFFDIO_CONTINUE, dataplane/page_cache_view.h).
enum class RamBacking : uint8_t { kAnonymous, kMemfd };

class RamBlock {
 public:
  // Maps `size` bytes (a multiple of host_page_size). 2 MiB pages come from hugetlb; when too
  // few are reserved the error says how many to reserve in /proc/sys/vm/nr_hugepages.
  static Result<std::unique_ptr<RamBlock>> create(std::string name, uint64_t size,
                                                  uint32_t host_page_size);
  // create() or create_shared() by `backing`.
  static Result<std::unique_ptr<RamBlock>> create(std::string name, uint64_t size,
                                                  uint32_t host_page_size, RamBacking backing);
  // Maps `size` bytes of the file `fd` from `offset`, shared: guest RAM that another process
  // (a VMM) owns and hands over as a memfd or hugetlbfs descriptor. Takes ownership of `fd`.
  static Result<std::unique_ptr<RamBlock>> map_fd(std::string name, int fd, uint64_t offset,
                                                  uint64_t size, uint32_t host_page_size);
  // Like create(), but on a fresh memfd (hugetlb for 2 MiB pages) mapped shared: file-backed
  // guest RAM that can be handed to another process (fd(): a VMM's RAM that ternd maps a second
  // time), and whose postcopy placement can be zero-copy (dataplane/page_cache_view.h).
  static Result<std::unique_ptr<RamBlock>> create_shared(std::string name, uint64_t size,
                                                         uint32_t host_page_size);
  ~RamBlock();
  RamBlock(const RamBlock&) = delete;
  RamBlock& operator=(const RamBlock&) = delete;

  const std::string& name() const { return name_; }
  uint8_t* base() const { return base_; }
  uint64_t size() const { return size_; }
  uint32_t host_page_size() const { return host_page_size_; }
  uint64_t host_pages() const { return size_ / host_page_size_; }
  uint64_t target_pages() const { return size_ / 4096; }
  uint32_t target_pages_per_host_page() const { return host_page_size_ / 4096; }
  bool hugetlb() const { return host_page_size_ == kHugePage; }
  // The backing file of a fd-backed block (map_fd, create_shared) and where the block starts
  // in it; -1 for anonymous memory. Owned by the block.
  int fd() const { return fd_; }
  uint64_t fd_offset() const { return fd_offset_; }
  // Whether the guest runs on another mapping of the block's file (map_fd: a VMM's RAM that
  // ternd maps a second time) rather than on this one (create, create_shared).
  bool mapped_elsewhere() const { return mapped_elsewhere_; }
  // Whether a 4 KiB block's file may sit on transparent huge pages (a tmpfs with huge=, or a
  // memfd where shmem_enabled allows it; the mapping's THPeligible when map_fd mapped it): then
  // stores through this mapping fault once per 2 MiB, as anonymous THP does.
  bool file_huge_pages() const { return file_huge_pages_; }

  // Drops the contents of [offset, offset+len) (host-page aligned) so the next access faults:
  // MADV_DONTNEED for anonymous memory; for fd-backed RAM a hole punched in the file, which
  // every mapping of it, in any process, then sees as missing (MADV_DONTNEED would only drop
  // this mapping's view of the shared pages). Used by the destination to discard stale pages
  // before postcopy.
  Status discard(uint64_t offset, uint64_t len);
  // 4 KiB blocks are mapped on transparent huge pages (one fault and one zeroing per 2 MiB,
  // not 512). The destination calls this before postcopy, before registering the block with
  // userfaultfd and discarding what it has not received, as QEMU's destination does: so that a
  // 4 KiB discard really empties 4 KiB (not refilled by a huge page the kernel thinks a good
  // idea) and pages then arrive as 4 KiB UFFDIO_COPY/ZEROPAGE placements. THPs already there
  // stay (the discard splits them): precopy data keeps its huge pages. No-op for hugetlb.
  Status use_small_pages();

  // Which host pages may hold data. Clears `count` bits at `bits` (64 a word), then sets bit i
  // when host page first+i was ever populated; a clear bit is a page never populated, zero by
  // definition, that needs neither reading nor sending. Reads no guest memory and faults
  // nothing in: anonymous memory asks /proc/self/pagemap (present or swapped, read in batches),
  // a file descriptor's memory asks mincore() (the page cache), then lseek(SEEK_DATA) for pages
  // mincore does not report (swapped out, hugetlbfs). When the kernel cannot say,
  // every page counts as populated. Any thread; the answer may be stale at once: a page
  // populated later was written, so dirty tracking reports it.
  void populated(uint64_t first, uint64_t count, uint64_t* bits) const;
  // True if host page hp may hold data (populated() of one page).
  bool populated(uint64_t hp) const;

 private:
  RamBlock(std::string name, uint8_t* base, uint64_t size, uint32_t host_page_size, int fd,
           uint64_t fd_offset);
  void populated_from_pagemap(uint64_t first, uint64_t count, uint64_t* bits) const;
  void populated_from_file(uint64_t first, uint64_t count, uint64_t* bits) const;
  std::string name_;
  uint8_t* base_;
  uint64_t size_;
  uint32_t host_page_size_;
  int fd_ = -1;            // backing file (map_fd, create_shared), -1 = anonymous
  uint64_t fd_offset_ = 0;
  int pagemap_fd_ = -1;    // /proc/self/pagemap for anonymous blocks, -1 if unreadable
  bool mapped_elsewhere_ = false;
  bool file_huge_pages_ = false;
};

// Per-block host page sizes and sizes, in block order (to size per-block bitmaps).
std::vector<uint32_t> host_page_sizes(const std::vector<RamBlock*>& blocks);
std::vector<uint64_t> block_sizes(const std::vector<RamBlock*>& blocks);

// Number of free 2 MiB hugetlb pages not reserved by a mapping, from /proc/meminfo (0 if
// unknown).
uint64_t free_huge_pages();
// Makes sure at least `pages` 2 MiB pages are free, raising /proc/sys/vm/nr_hugepages if needed.
// Returns what it did in words ("reserved 512 more 2 MiB pages"), or an error.
Result<std::string> reserve_huge_pages(uint64_t pages);

}  // namespace tern
