// userfaultfd, as the destination uses it in postcopy: register guest RAM for missing-page
// faults, read fault addresses, and install whole host pages atomically (UFFDIO_COPY), or
// zero pages (UFFDIO_ZEROPAGE for 4 KiB; a copy from a zeroed huge page for hugetlb, which has
// no zeropage ioctl). File-backed RAM (memfd, hugetlbfs) may also be registered for minor
// faults, and a page already in the page cache installed with UFFDIO_CONTINUE (no copy).
// Placement calls wake every thread waiting on the page.
//
// Threads: the ioctls are thread-safe; read_faults() from one fault thread only.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "dataplane/status.h"

namespace tern {

class Userfault {
 public:
  // Opens a non-blocking userfaultfd (/dev/userfaultfd, else the syscall) and negotiates the
  // API. The error says what is missing (kernel option, permission).
  static Result<std::unique_ptr<Userfault>> open();
  // A userfaultfd another process (a VMM) created and handed over, for its own mappings of
  // guest RAM that this process maps too: each `Remap` says where one range mapped here
  // (`local`) sits in the creator's address space (`remote`). Every call below takes and
  // returns local addresses and translates them; the kernel applies the ioctls to the
  // creator's address space. Takes ownership of `fd` (UFFDIO_API already done by the creator).
  // `minor_faults`: the creator says it asked for minor faults on shmem and hugetlbfs (the
  // attach capability 'minor-faults'), so its ranges may be registered for them.
  struct Remap {
    uint8_t* local = nullptr;
    uint64_t remote = 0;
    uint64_t size = 0;
  };
  static std::unique_ptr<Userfault> adopt(int fd, std::vector<Remap> remaps,
                                          bool minor_faults = false);
  ~Userfault();
  Userfault(const Userfault&) = delete;
  Userfault& operator=(const Userfault&) = delete;

  // Missing-page mode over [addr, addr+len); hugetlb ranges must be 2 MiB aligned. With
  // `minor`, minor faults too (a page in the page cache but not in this mapping): the range
  // must be a shared mapping of a memfd/shmem or hugetlbfs file, and minor_faults() true.
  Status register_range(void* addr, size_t len, uint32_t host_page_size, bool minor = false);
  // Whether this kernel reports minor faults on shmem (4 KiB) or hugetlbfs (2 MiB) memory
  // (Linux >= 5.13); "" if so, else why not, in words. For an adopted userfaultfd, what its
  // creator said (adopt's `minor_faults`): without them VMM-attached RAM is placed with
  // UFFDIO_COPY.
  std::string minor_faults_missing(uint32_t host_page_size) const;
  Status unregister_range(void* addr, size_t len);
  int fd() const { return fd_; }

  // Data path. Reads up to max pending page-fault addresses (page-aligned to 4 KiB) without
  // blocking. Returns the count, 0 when none are pending, or -errno. For hugetlb the kernel
  // reports the start of the 2 MiB page, not the faulting 4 KiB page.
  int read_faults(uint64_t* addrs, int max);

  // Installs len bytes (one whole host page) from src at dst and wakes its waiters.
  // 0 on success, -EEXIST if the page is already present (waiters are woken anyway),
  // else -errno. Retries internally on -EAGAIN.
  int copy(void* dst, const void* src, size_t len);
  // Maps the page cache pages behind [dst, dst+len) (whole host pages, already present in the
  // file) into the registered mapping and wakes their waiters: UFFDIO_CONTINUE. Like copy():
  // 0, -EEXIST if already mapped (waiters woken), else -errno.
  int install(void* dst, size_t len);
  // Installs a zero host page at dst (len = host page size), like copy().
  int zero(void* dst, size_t len, uint32_t host_page_size);
  // Wakes threads waiting on [addr, addr+len) (when the page was placed by other means).
  int wake(void* addr, size_t len);

 private:
  explicit Userfault(int fd) : fd_(fd) {}
  uint64_t to_remote(uint64_t local) const;  // identity unless adopted
  uint64_t to_local(uint64_t remote) const;
  int fd_;
  bool adopted_ = false;          // adopt(): another process negotiated the features
  bool adopted_minor_ = false;    // adopt(): its creator asked for minor faults
  std::vector<Remap> remaps_;     // (fixed) adopted: local -> creator's addresses
  uint64_t features_ = 0;         // UFFD_FEATURE_* the kernel granted at open()
  uint8_t* zero_huge_ = nullptr;  // lazily mapped 2 MiB of zeros for hugetlb zero placement
};

}  // namespace tern
