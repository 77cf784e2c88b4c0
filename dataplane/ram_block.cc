#include "dataplane/ram_block.h"

#include <fcntl.h>
#include <linux/memfd.h>
#include <linux/mman.h>
#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <sstream>
#include <string>

#include "dataplane/huge_tmpfs.h"

namespace tern {

Result<std::unique_ptr<RamBlock>> RamBlock::create(std::string name, uint64_t size,
                                                   uint32_t host_page_size) {
  if (host_page_size != kSmallPage && host_page_size != kHugePage)
    return Status(Code::kInvalidArgument, "block '" + name + "': host page size must be 4K or 2M");
  if (size == 0 || size % host_page_size != 0)
    return Status(Code::kInvalidArgument, "block '" + name + "': size " + std::to_string(size) +
                                              " is not a positive multiple of the host page size " +
                                              std::to_string(host_page_size));
  int flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE;
  if (host_page_size == kHugePage) flags = MAP_PRIVATE | MAP_ANONYMOUS | MAP_HUGETLB | MAP_HUGE_2MB;
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, flags, -1, 0);
  if (p == MAP_FAILED) {
    int err = errno;
    if (host_page_size == kHugePage)
      return Status(Code::kUnavailable,
                    "block '" + name + "': cannot map " + std::to_string(size >> 21) +
                        " hugetlb 2 MiB pages (" + std::strerror(err) + "); " +
                        std::to_string(free_huge_pages()) +
                        " are free: reserve more with 'echo N > /proc/sys/vm/nr_hugepages'");
    return errno_status("block '" + name + "': mmap of " + std::to_string(size) + " bytes", err);
  }
  // Transparent huge pages where the host allows them (advisory: "never" in
  // /sys/kernel/mm/transparent_hugepage/enabled leaves 4 KiB pages).
  if (host_page_size == kSmallPage) madvise(p, size, MADV_HUGEPAGE);
  return std::unique_ptr<RamBlock>(
      new RamBlock(std::move(name), static_cast<uint8_t*>(p), size, host_page_size, -1, 0));
}

Result<std::unique_ptr<RamBlock>> RamBlock::create(std::string name, uint64_t size,
                                                   uint32_t host_page_size, RamBacking backing) {
  return backing == RamBacking::kMemfd ? create_shared(std::move(name), size, host_page_size)
                                       : create(std::move(name), size, host_page_size);
}

Result<std::unique_ptr<RamBlock>> RamBlock::map_fd(std::string name, int fd, uint64_t offset,
                                                   uint64_t size, uint32_t host_page_size) {
  auto fail = [&](Status s) {
    close(fd);
    return s;
  };
  if (host_page_size != kSmallPage && host_page_size != kHugePage)
    return fail(Status(Code::kInvalidArgument, "block '" + name + "': host page size must be 4K or 2M"));
  if (size == 0 || size % host_page_size || offset % host_page_size)
    return fail(Status(Code::kInvalidArgument, "block '" + name + "': offset " +
                                                   std::to_string(offset) + " and size " +
                                                   std::to_string(size) +
                                                   " must be multiples of the host page size"));
  void* p = mmap(nullptr, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, static_cast<off_t>(offset));
  if (p == MAP_FAILED) return fail(errno_status("block '" + name + "': mmap of the descriptor"));
  std::unique_ptr<RamBlock> b(
      new RamBlock(std::move(name), static_cast<uint8_t*>(p), size, host_page_size, fd, offset));
  b->mapped_elsewhere_ = true;
  b->file_huge_pages_ = host_page_size == kSmallPage && mapping_thp_eligible(p);
  return b;
}

Result<std::unique_ptr<RamBlock>> RamBlock::create_shared(std::string name, uint64_t size,
                                                          uint32_t host_page_size) {
  // 4 KiB pages: a file on a private huge tmpfs where memfds would have 4 KiB pages (one
  // page per 4 KiB for every write and a fault per 16 pages for every mapping: 1.3x the CPU of
  // a migration, docs/embedding.md); a memfd where that cannot be had (no CAP_SYS_ADMIN).
  if (host_page_size == kSmallPage && size % kSmallPage == 0 && !memfd_has_huge_pages()) {
    if (Result<int> fd = open_huge_tmpfs_file(size)) {
      auto b = map_fd(std::move(name), *fd, 0, size, host_page_size);
      if (b) (*b)->mapped_elsewhere_ = false;  // the guest runs on this mapping
      return b;
    }
  }
  unsigned flags = MFD_CLOEXEC;
  if (host_page_size == kHugePage) flags |= MFD_HUGETLB | MFD_HUGE_2MB;
  int fd = memfd_create(name.c_str(), flags);
  if (fd < 0) return errno_status("block '" + name + "': memfd_create");
  if (size % host_page_size == 0 && ftruncate(fd, static_cast<off_t>(size)) != 0) {
    int err = errno;
    close(fd);
    return errno_status("block '" + name + "': ftruncate of the memfd to " + std::to_string(size),
                        err);
  }
  auto b = map_fd(std::move(name), fd, 0, size, host_page_size);
  if (b) (*b)->mapped_elsewhere_ = false;  // the guest runs on this mapping
  if (!b && host_page_size == kHugePage)
    return Status(Code::kUnavailable, b.status().message() + "; " +
                                          std::to_string(free_huge_pages()) +
                                          " 2 MiB pages are free: reserve more with 'echo N > "
                                          "/proc/sys/vm/nr_hugepages'");
  // Transparent huge pages for shmem follow /sys/kernel/mm/transparent_hugepage/shmem_enabled
  // ("advise" honours this; "never", the default, leaves 4 KiB pages).
  if (b && host_page_size == kSmallPage) madvise((*b)->base(), size, MADV_HUGEPAGE);
  return b;
}

RamBlock::RamBlock(std::string name, uint8_t* base, uint64_t size, uint32_t host_page_size,
                   int fd, uint64_t fd_offset)
    : name_(std::move(name)),
      base_(base),
      size_(size),
      host_page_size_(host_page_size),
      fd_(fd),
      fd_offset_(fd_offset) {
  if (fd_ < 0) pagemap_fd_ = open("/proc/self/pagemap", O_RDONLY | O_CLOEXEC);
}

RamBlock::~RamBlock() {
  munmap(base_, size_);
  if (fd_ >= 0) close(fd_);
  if (pagemap_fd_ >= 0) close(pagemap_fd_);
}

void RamBlock::populated(uint64_t first, uint64_t count, uint64_t* bits) const {
  std::fill(bits, bits + (count + 63) / 64, 0);
  if (first >= host_pages()) return;
  count = std::min(count, host_pages() - first);
  if (fd_ >= 0) return populated_from_file(first, count, bits);
  populated_from_pagemap(first, count, bits);
}

bool RamBlock::populated(uint64_t hp) const {
  uint64_t bit = 0;
  populated(hp, 1, &bit);
  return bit != 0;
}

// pagemap: one u64 per 4 KiB virtual page; bit 63 present, bit 62 swapped. A huge page
// (THP or hugetlb) reports every 4 KiB page under it.
void RamBlock::populated_from_pagemap(uint64_t first, uint64_t count, uint64_t* bits) const {
  auto all = [&] {
    for (uint64_t i = 0; i < count; ++i) bits[i / 64] |= uint64_t{1} << (i % 64);
  };
  if (pagemap_fd_ < 0) return all();
  constexpr uint64_t kPresentOrSwapped = 3ull << 62;
  const uint64_t base_vpn = reinterpret_cast<uintptr_t>(base_) / kSmallPage;
  const uint64_t step = host_page_size_ / kSmallPage;  // 4 KiB entries per host page
  constexpr size_t kBatch = 512;
  uint64_t entries[kBatch];
  if (step == 1) {
    for (uint64_t done = 0; done < count;) {
      const size_t n = static_cast<size_t>(std::min<uint64_t>(kBatch, count - done));
      const off_t at = static_cast<off_t>((base_vpn + first + done) * 8);
      if (pread(pagemap_fd_, entries, n * 8, at) != static_cast<ssize_t>(n * 8)) return all();
      for (size_t i = 0; i < n; ++i)
        if (entries[i] & kPresentOrSwapped) bits[(done + i) / 64] |= uint64_t{1} << ((done + i) % 64);
      done += n;
    }
    return;
  }
  for (uint64_t i = 0; i < count; ++i) {  // hugetlb: the first entry speaks for the host page
    const off_t at = static_cast<off_t>((base_vpn + (first + i) * step) * 8);
    if (pread(pagemap_fd_, entries, 8, at) != 8) return all();
    if (entries[0] & kPresentOrSwapped) bits[i / 64] |= uint64_t{1} << (i % 64);
  }
}

// A file's holes were never written (or were punched): zero. mincore() says, one call per
// batch, which pages the page cache holds (or this mapping maps). A page it does not report
// may still hold data (swapped out; hugetlbfs, where mincore sees only this mapping's page
// tables; mincore refused a look at the page cache): lseek(SEEK_DATA) decides, once per run of
// such pages, and skips the run's holes in one call. Not SEEK_HOLE: tmpfs finds the end of the
// data by walking every page up to the first hole (0.5 ms per call on a populated 128 MiB
// memfd), which made each postcopy request for an attached VMM's page cost that much.
void RamBlock::populated_from_file(uint64_t first, uint64_t count, uint64_t* bits) const {
  const uint64_t hp = host_page_size_;
  const uint64_t step = hp / kSmallPage;  // mincore entries per host page
  constexpr uint64_t kBatch = 512;        // mincore entries per call: one 2 MiB host page
  unsigned char resident[kBatch];
  auto set = [&](uint64_t i) { bits[i / 64] |= uint64_t{1} << (i % 64); };
  uint64_t hole_until = 0;  // host pages [.., hole_until) that lseek found to be holes
  for (uint64_t i = 0; i < count;) {
    const uint64_t n = std::min(count - i, kBatch / step);
    if (mincore(base_ + (first + i) * hp, n * hp, resident) != 0) {
      for (; i < count; ++i) set(i);  // the kernel cannot say
      return;
    }
    for (uint64_t j = 0; j < n; ++j, ++i) {
      if (resident[j * step] & 1) {
        set(i);
        continue;
      }
      if (i < hole_until) continue;
      const off_t data = lseek(fd_, static_cast<off_t>(fd_offset_ + (first + i) * hp), SEEK_DATA);
      if (data < 0 && errno == ENXIO) {
        hole_until = count;  // no data up to the end of the file
        continue;
      }
      if (data < 0) {
        for (; i < count; ++i) set(i);  // the file system cannot say
        return;
      }
      const uint64_t at = (static_cast<uint64_t>(data) - fd_offset_) / hp - first;
      if (at == i) set(i);
      else hole_until = at;  // host pages [i, at) hold no data
    }
  }
}

Status RamBlock::discard(uint64_t offset, uint64_t len) {
  if (offset % host_page_size_ || len % host_page_size_ || offset + len > size_)
    return Status(Code::kInvalidArgument, "discard outside block '" + name_ + "'");
  if (fd_ >= 0) {
    // A shared mapping's MADV_DONTNEED only unmaps: the page cache would still hold the page.
    if (len != 0 && fallocate(fd_, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
                              static_cast<off_t>(fd_offset_ + offset), static_cast<off_t>(len)) != 0)
      return errno_status("punching a hole in the file of block '" + name_ + "'");
    return Status::ok();
  }
  if (madvise(base_ + offset, len, MADV_DONTNEED) != 0)
    return errno_status("madvise(MADV_DONTNEED) on block '" + name_ + "'");
  return Status::ok();
}

std::vector<uint32_t> host_page_sizes(const std::vector<RamBlock*>& blocks) {
  std::vector<uint32_t> v;
  for (auto* b : blocks) v.push_back(b->host_page_size());
  return v;
}

std::vector<uint64_t> block_sizes(const std::vector<RamBlock*>& blocks) {
  std::vector<uint64_t> v;
  for (auto* b : blocks) v.push_back(b->size());
  return v;
}

Status RamBlock::use_small_pages() {
  if (hugetlb()) return Status::ok();
  if (madvise(base_, size_, MADV_NOHUGEPAGE) != 0)
    return errno_status("madvise(MADV_NOHUGEPAGE) on block '" + name_ + "'");
  return Status::ok();
}

static uint64_t meminfo_value(const std::string& key) {
  std::ifstream in("/proc/meminfo");
  std::string line;
  while (std::getline(in, line)) {
    if (line.rfind(key, 0) == 0) {
      std::istringstream s(line.substr(key.size()));
      uint64_t v = 0;
      s >> v;
      return v;
    }
  }
  return 0;
}

uint64_t free_huge_pages() {
  // Free pages that a mapping has reserved (a shared or private hugetlb mapping reserves its
  // pages at mmap, before touching them) are not free for the next mapping.
  const uint64_t free = meminfo_value("HugePages_Free:"), rsvd = meminfo_value("HugePages_Rsvd:");
  return free > rsvd ? free - rsvd : 0;
}

Result<std::string> reserve_huge_pages(uint64_t pages) {
  uint64_t free_now = free_huge_pages();
  if (free_now >= pages) return std::string("hugetlb: ") + std::to_string(free_now) +
                                " 2 MiB pages free, " + std::to_string(pages) + " needed";
  uint64_t total = meminfo_value("HugePages_Total:");
  uint64_t want = total + (pages - free_now);
  {
    std::ofstream out("/proc/sys/vm/nr_hugepages");
    out << want;
    if (!out) return Status(Code::kUnavailable, "cannot write /proc/sys/vm/nr_hugepages (root?)");
  }
  uint64_t got = free_huge_pages();
  if (got < pages)
    return Status(Code::kUnavailable, "asked the kernel for " + std::to_string(want) +
                                          " hugetlb pages but only " + std::to_string(got) +
                                          " are free (memory fragmented?)");
  return "hugetlb: reserved " + std::to_string(pages - free_now) + " more 2 MiB pages (" +
         std::to_string(got) + " free, " + std::to_string(pages) + " needed)";
}

}  // namespace tern
