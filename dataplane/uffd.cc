#include "dataplane/uffd.h"

#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <string>

#include "dataplane/ram_block.h"

namespace tern {
namespace {

constexpr int kUffdFlags = O_CLOEXEC | O_NONBLOCK;
constexpr uint64_t kTargetMask = ~uint64_t{kSmallPage - 1};
#ifdef UFFD_FEATURE_MINOR_SHMEM
constexpr uint64_t kMinorFeatures = UFFD_FEATURE_MINOR_HUGETLBFS | UFFD_FEATURE_MINOR_SHMEM;
constexpr uint64_t kMinorMode = UFFDIO_REGISTER_MODE_MINOR;
constexpr int kContinueIoctl = _UFFDIO_CONTINUE;
#else  // headers older than Linux 5.13: no minor faults
constexpr uint64_t kMinorFeatures = 0;
constexpr uint64_t kMinorMode = 0;
constexpr int kContinueIoctl = -1;
#endif

// A new userfaultfd from /dev/userfaultfd (Linux >= 6.1; access is governed by the device's file
// mode rather than vm.unprivileged_userfaultfd). Returns the fd, or -errno.
int open_from_device() {
  int dev = ::open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);
  if (dev < 0) return -errno;
  int fd = ioctl(dev, USERFAULTFD_IOC_NEW, kUffdFlags);
  int err = errno;
  close(dev);
  return fd >= 0 ? fd : -err;
}

int open_from_syscall() {
#ifdef SYS_userfaultfd
  int fd = static_cast<int>(syscall(SYS_userfaultfd, kUffdFlags));
  return fd >= 0 ? fd : -errno;
#else
  return -ENOSYS;
#endif
}

// What a person can do about a failure to obtain a userfaultfd.
std::string open_advice(int dev_err, int sys_err) {
  std::string s =
      "cannot open a userfaultfd: /dev/userfaultfd: " + std::string(std::strerror(-dev_err)) +
      "; userfaultfd(2): " + std::strerror(-sys_err) + ". ";
  if (sys_err == -ENOSYS)
    return s +
           "The kernel was built without CONFIG_USERFAULTFD, or a seccomp filter blocks "
           "the syscall (containers): use a kernel/runtime that allows userfaultfd.";
  if (sys_err == -EPERM || sys_err == -EACCES)
    return s +
           "Run as root (or with CAP_SYS_PTRACE), or allow unprivileged use with "
           "'sysctl vm.unprivileged_userfaultfd=1', or grant this user read/write access "
           "to /dev/userfaultfd.";
  return s + "Check the process's open-file limit (ulimit -n) and available memory.";
}

// UFFDIO_API handshake; may be done once per fd. Returns 0 or -errno.
int handshake(int fd, uint64_t features, uint64_t* ioctls) {
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = features;
  if (ioctl(fd, UFFDIO_API, &api) != 0) return -errno;
  *ioctls = api.ioctls;
  return 0;
}

// Runs a placement ioctl (UFFDIO_COPY or UFFDIO_ZEROPAGE) over [dst, dst+len) to completion.
// The kernel stops early with -EAGAIN when the mm changes under it or after a partial fill, and
// writes the bytes done (or -errno) back into `done_field`; the rest is retried. On error the
// kernel wakes nobody, so -EEXIST (someone placed the page first) wakes the waiters explicitly.
template <typename Arg, typename Fill>
int place(int fd, unsigned long request, uint64_t dst, uint64_t len, Fill fill,
          __s64 Arg::*done_field) {
  uint64_t done = 0;
  while (done < len) {
    Arg arg{};
    fill(arg, dst + done, done, len - done);
    if (ioctl(fd, request, &arg) == 0) return 0;
    int err = errno;
    if (err == EAGAIN || err == EINTR) {
      if (arg.*done_field > 0) done += static_cast<uint64_t>(arg.*done_field);
      continue;
    }
    if (err == EEXIST) {
      uffdio_range range{dst, len};
      ioctl(fd, UFFDIO_WAKE, &range);
      return -EEXIST;
    }
    return -err;
  }
  return 0;
}

// place() for the ioctls whose argument is a range and a mode (UFFDIO_ZEROPAGE, UFFDIO_CONTINUE).
// `dst` is an address in the userfaultfd creator's address space (Userfault::to_remote()).
template <typename Arg>
int place_range(int fd, unsigned long request, uint64_t dst, uint64_t len,
                __s64 Arg::*done_field) {
  return place<Arg>(
      fd, request, dst, len,
      [](Arg& a, uint64_t d, uint64_t, uint64_t rest) {
        a.range.start = d;
        a.range.len = rest;
        a.mode = 0;
      },
      done_field);
}

}  // namespace

Result<std::unique_ptr<Userfault>> Userfault::open() {
  auto open_fd = []() -> Result<int> {
    int fd = open_from_device();
    if (fd >= 0) return fd;
    int dev_err = fd;
    fd = open_from_syscall();
    if (fd >= 0) return fd;
    return Status(Code::kUnavailable, open_advice(dev_err, fd));
  };
  Result<int> fd = open_fd();
  if (!fd) return fd.status();

  // Ask for hugetlb missing-mode faults and minor faults on shmem and hugetlbfs; a kernel
  // without one of them rejects the whole handshake, and the fd cannot be handshaken twice, so
  // retry on a fresh fd with fewer (minor faults: Linux >= 5.13; hugetlb missing: >= 4.11).
  const uint64_t wants[] = {UFFD_FEATURE_MISSING_HUGETLBFS | kMinorFeatures,
                            UFFD_FEATURE_MISSING_HUGETLBFS, 0};
  uint64_t ioctls = 0;
  uint64_t features = 0;
  int r = -EINVAL;
  for (size_t i = 0; i < std::size(wants); ++i) {
    if (i > 0) {
      close(*fd);
      fd = open_fd();
      if (!fd) return fd.status();
    }
    features = wants[i];
    r = handshake(*fd, features, &ioctls);
    if (r != -EINVAL) break;
  }
  if (r != 0) {
    close(*fd);
    return Status(Code::kUnavailable,
                  std::string("userfaultfd API handshake (UFFDIO_API) failed: ") +
                      std::strerror(-r) +
                      "; the kernel is too old or "
                      "its userfaultfd support is restricted");
  }
  constexpr uint64_t kNeed = uint64_t{1} << _UFFDIO_REGISTER | uint64_t{1} << _UFFDIO_UNREGISTER;
  if ((ioctls & kNeed) != kNeed) {
    close(*fd);
    return Status(Code::kUnavailable,
                  "userfaultfd lacks UFFDIO_REGISTER/UNREGISTER: kernel too old for postcopy");
  }
  std::unique_ptr<Userfault> u(new Userfault(*fd));
  u->features_ = features;
  return u;
}

std::unique_ptr<Userfault> Userfault::adopt(int fd, std::vector<Remap> remaps,
                                            bool minor_faults) {
  std::unique_ptr<Userfault> u(new Userfault(fd));
  u->remaps_ = std::move(remaps);
  // The creator negotiated the API; hugetlb missing faults are asked for by every creator
  // tern knows (libtern-vmm's users are told to), and a kernel without them refuses the
  // registration with a clear error anyway.
  // Minor faults only when the creator says it asked for them (else placement on an adopted
  // userfaultfd is UFFDIO_COPY; minor_faults_missing() says why). A kernel without them would
  // have refused the creator's UFFDIO_API, and refuses a minor registration clearly anyway.
  u->features_ = UFFD_FEATURE_MISSING_HUGETLBFS | (minor_faults ? kMinorFeatures : 0);
  u->adopted_ = true;
  u->adopted_minor_ = minor_faults;
  return u;
}

uint64_t Userfault::to_remote(uint64_t local) const {
  for (const Remap& r : remaps_) {
    const auto base = reinterpret_cast<uint64_t>(r.local);
    if (local >= base && local - base < r.size) return r.remote + (local - base);
  }
  return local;
}

uint64_t Userfault::to_local(uint64_t remote) const {
  for (const Remap& r : remaps_)
    if (remote >= r.remote && remote - r.remote < r.size)
      return reinterpret_cast<uint64_t>(r.local) + (remote - r.remote);
  return remote;
}

Userfault::~Userfault() {
  if (fd_ >= 0) close(fd_);  // also wakes any thread still waiting on a registered page
  if (zero_huge_ != nullptr) munmap(zero_huge_, kHugePage);
}

std::string Userfault::minor_faults_missing(uint32_t host_page_size) const {
  if (adopted_ && !adopted_minor_)
    return "the VMM's userfaultfd has no minor faults (the VMM did not offer the attach "
           "capability 'minor-faults'; docs/attach-protocol.md)";
  if (kMinorFeatures == 0)
    return "tern was built against kernel headers without userfaultfd minor faults (< 5.13)";
#ifdef UFFD_FEATURE_MINOR_SHMEM
  const uint64_t need =
      host_page_size == kHugePage ? UFFD_FEATURE_MINOR_HUGETLBFS : UFFD_FEATURE_MINOR_SHMEM;
  if ((features_ & need) == 0)
    return std::string("this kernel has no userfaultfd minor faults on ") +
           (host_page_size == kHugePage ? "hugetlbfs (UFFD_FEATURE_MINOR_HUGETLBFS" :
                                          "shmem (UFFD_FEATURE_MINOR_SHMEM") +
           ", Linux >= 5.13)";
#endif
  return "";
}

Status Userfault::register_range(void* addr, size_t len, uint32_t host_page_size, bool minor) {
  const auto a = reinterpret_cast<uint64_t>(addr);
  if (host_page_size != kSmallPage && host_page_size != kHugePage)
    return Status(Code::kInvalidArgument,
                  "userfaultfd: host page size must be 4 KiB or 2 MiB, got " +
                      std::to_string(host_page_size));
  if (len == 0 || a % host_page_size != 0 || len % host_page_size != 0)
    return Status(Code::kInvalidArgument, "userfaultfd: range of " + std::to_string(len) +
                                              " bytes at " + std::to_string(a) +
                                              " is not aligned to its host page size " +
                                              std::to_string(host_page_size));
  const bool huge = host_page_size == kHugePage;
  if (huge && (features_ & UFFD_FEATURE_MISSING_HUGETLBFS) == 0)
    return Status(Code::kUnavailable,
                  "userfaultfd: this kernel cannot handle missing faults on hugetlb memory "
                  "(no UFFD_FEATURE_MISSING_HUGETLBFS, needs Linux >= 4.11); use 4 KiB pages");

  if (minor)
    if (std::string why = minor_faults_missing(host_page_size); !why.empty())
      return Status(Code::kUnavailable, "userfaultfd: " + why);

  uffdio_register reg{};
  reg.range.start = to_remote(a);
  reg.range.len = len;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | (minor ? kMinorMode : 0);
  if (ioctl(fd_, UFFDIO_REGISTER, &reg) != 0) {
    int err = errno;
    if (err == EBUSY)
      return Status(Code::kUnavailable,
                    "userfaultfd: range is already registered with another userfaultfd");
    if (err == EINVAL)
      return Status(Code::kInvalidArgument,
                    "userfaultfd: cannot register " + std::to_string(len) +
                        " bytes: the range must be covered by private anonymous or hugetlb "
                        "mappings aligned to their page size" +
                        (minor ? " (minor faults: shared memfd/shmem or hugetlbfs mappings)"
                               : ""));
    return errno_status("userfaultfd: UFFDIO_REGISTER", err);
  }
  // The kernel reports which placement ioctls the range supports; hugetlb has no ZEROPAGE.
  uint64_t need = uint64_t{1} << _UFFDIO_COPY | uint64_t{1} << _UFFDIO_WAKE;
  if (!huge && !minor) need |= uint64_t{1} << _UFFDIO_ZEROPAGE;
  if (minor) need |= uint64_t{1} << kContinueIoctl;
  if ((reg.ioctls & need) != need) {
    uffdio_range range{to_remote(a), len};
    ioctl(fd_, UFFDIO_UNREGISTER, &range);
    return Status(Code::kUnavailable,
                  std::string("userfaultfd: the range does not support ") +
                      ((reg.ioctls & (uint64_t{1} << _UFFDIO_COPY)) == 0 ? "UFFDIO_COPY"
                       : minor ? "UFFDIO_CONTINUE"
                               : "UFFDIO_ZEROPAGE") +
                      (huge ? "" : " (is it hugetlb memory registered with 4 KiB pages?)"));
  }
  return Status::ok();
}

Status Userfault::unregister_range(void* addr, size_t len) {
  uffdio_range range{to_remote(reinterpret_cast<uint64_t>(addr)), len};
  if (ioctl(fd_, UFFDIO_UNREGISTER, &range) != 0)
    return errno_status("userfaultfd: UFFDIO_UNREGISTER of " + std::to_string(len) + " bytes");
  return Status::ok();
}

int Userfault::read_faults(uint64_t* addrs, int max) {
  constexpr int kBatch = 32;  // 32 * 32 bytes on the stack
  uffd_msg msgs[kBatch];
  int n = 0;
  while (n < max) {
    const int want = std::min(kBatch, max - n);
    ssize_t r = ::read(fd_, msgs, sizeof(uffd_msg) * want);
    if (r < 0) {
      if (errno == EINTR) continue;
      if (errno == EAGAIN) break;
      return n > 0 ? n : -errno;
    }
    const int got = static_cast<int>(r / static_cast<ssize_t>(sizeof(uffd_msg)));
    for (int i = 0; i < got; ++i) {
      // Missing and minor page faults; other events need features we never ask for.
      if (msgs[i].event == UFFD_EVENT_PAGEFAULT)
        addrs[n++] = to_local(msgs[i].arg.pagefault.address & kTargetMask);
    }
    if (got < want) break;  // queue drained
  }
  return n;
}

int Userfault::copy(void* dst, const void* src, size_t len) {
  const auto s = reinterpret_cast<uint64_t>(src);
  return place<uffdio_copy>(
      fd_, UFFDIO_COPY, to_remote(reinterpret_cast<uint64_t>(dst)), len,
      [s](uffdio_copy& c, uint64_t d, uint64_t off, uint64_t rest) {
        c.dst = d;
        c.src = s + off;
        c.len = rest;
        c.mode = 0;
      },
      &uffdio_copy::copy);
}

int Userfault::install(void* dst, size_t len) {
#ifdef UFFD_FEATURE_MINOR_SHMEM
  return place_range<uffdio_continue>(fd_, UFFDIO_CONTINUE,
                                      to_remote(reinterpret_cast<uint64_t>(dst)), len,
                                      &uffdio_continue::mapped);
#else
  (void)dst;
  (void)len;
  return -ENOSYS;
#endif
}

int Userfault::zero(void* dst, size_t len, uint32_t host_page_size) {
  if (host_page_size != kHugePage) {
    return place_range<uffdio_zeropage>(fd_, UFFDIO_ZEROPAGE,
                                        to_remote(reinterpret_cast<uint64_t>(dst)), len,
                                        &uffdio_zeropage::zeropage);
  }
  // hugetlb has no UFFDIO_ZEROPAGE: copy from 2 MiB of zeros. The source is mapped once, read
  // only and pre-faulted onto the shared zero page, so it costs no memory and the copy never
  // has to drop its locks to fault the source in.
  std::atomic_ref<uint8_t*> zero_ref(zero_huge_);
  uint8_t* zeros = zero_ref.load(std::memory_order_acquire);
  if (zeros == nullptr) {
    void* p =
        mmap(nullptr, kHugePage, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    if (p == MAP_FAILED) return -errno;
    uint8_t* expected = nullptr;
    if (zero_ref.compare_exchange_strong(expected, static_cast<uint8_t*>(p),
                                         std::memory_order_acq_rel)) {
      zeros = static_cast<uint8_t*>(p);
    } else {
      munmap(p, kHugePage);  // another thread won the race
      zeros = expected;
    }
  }
  auto* d = static_cast<uint8_t*>(dst);
  for (size_t off = 0; off < len; off += kHugePage) {
    int r = copy(d + off, zeros, std::min<size_t>(kHugePage, len - off));
    if (r != 0) return r;
  }
  return 0;
}

int Userfault::wake(void* addr, size_t len) {
  uffdio_range range{to_remote(reinterpret_cast<uint64_t>(addr)), len};
  return ioctl(fd_, UFFDIO_WAKE, &range) == 0 ? 0 : -errno;
}

}  // namespace tern
