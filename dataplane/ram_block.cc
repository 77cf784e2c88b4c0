#include "dataplane/ram_block.h"

#include <linux/mman.h>
#include <sys/mman.h>

#include <fstream>
#include <sstream>
#include <string>

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
      new RamBlock(std::move(name), static_cast<uint8_t*>(p), size, host_page_size));
}

RamBlock::~RamBlock() { munmap(base_, size_); }

Status RamBlock::discard(uint64_t offset, uint64_t len) {
  if (offset % host_page_size_ || len % host_page_size_ || offset + len > size_)
    return Status(Code::kInvalidArgument, "discard outside block '" + name_ + "'");
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

uint64_t free_huge_pages() { return meminfo_value("HugePages_Free:"); }

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
