#include "dataplane/page_cache_view.h"

#include <fcntl.h>
#include <sys/mman.h>

#include <cerrno>

namespace tern {

Result<std::unique_ptr<PageCacheView>> PageCacheView::map(const RamBlock& block) {
  if (block.fd() < 0)
    return Status(Code::kInvalidArgument,
                  "block '" + block.name() + "' is anonymous memory: no page cache to land in");
  void* p = mmap(nullptr, block.size(), PROT_READ | PROT_WRITE, MAP_SHARED, block.fd(),
                 static_cast<off_t>(block.fd_offset()));
  if (p == MAP_FAILED)
    return errno_status("block '" + block.name() + "': mapping its file a second time");
  // Payloads are copied in whole host pages: no read-ahead of neighbours worth having.
  madvise(p, block.size(), MADV_RANDOM);
  return std::unique_ptr<PageCacheView>(new PageCacheView(
      static_cast<uint8_t*>(p), block.size(), block.fd(), block.fd_offset()));
}

PageCacheView::~PageCacheView() { munmap(base_, size_); }

int PageCacheView::allocate(uint64_t offset, uint64_t len) const {
  if (offset > size_ || len > size_ - offset) return -EINVAL;
  if (fallocate(fd_, 0, static_cast<off_t>(fd_offset_ + offset), static_cast<off_t>(len)) != 0)
    return -errno;
  return 0;
}

}  // namespace tern
