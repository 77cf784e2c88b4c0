// Guest RAM another process owns (a VMM attached to ternd): a memfd-backed block mapped twice,
// a discard that every mapping sees (a hole punched in the file), and a userfaultfd adopted with
// address translation: faults in the "VMM's" mapping are reported at ternd's addresses, and
// pages placed at ternd's addresses (UFFDIO_COPY, and UFFDIO_CONTINUE for a page already in the
// shared file) land in the VMM's mapping and wake its thread.
#include <fcntl.h>
#include <gtest/gtest.h>
#include <linux/userfaultfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include "dataplane/huge_tmpfs.h"
#include "dataplane/ram_block.h"
#include "dataplane/uffd.h"

namespace tern {
namespace {

constexpr uint64_t kSize = 1 << 20;

TEST(SharedRam, TwoMappingsShareThePagesAndADiscardEmptiesBoth) {
  auto vmm = RamBlock::create_shared("ram", kSize, kSmallPage);
  ASSERT_TRUE(vmm.is_ok()) << vmm.status().to_string();
  auto ternd = RamBlock::map_fd("ram", fcntl((*vmm)->fd(), F_DUPFD_CLOEXEC, 0), 0, kSize, kSmallPage);
  ASSERT_TRUE(ternd.is_ok()) << ternd.status().to_string();
  (*vmm)->base()[3 * 4096] = 7;
  EXPECT_EQ((*ternd)->base()[3 * 4096], 7);
  EXPECT_TRUE((*ternd)->populated(3));
  EXPECT_FALSE((*ternd)->populated(4));
  ASSERT_TRUE((*ternd)->discard(3 * 4096, 4096).is_ok());
  EXPECT_EQ((*vmm)->base()[3 * 4096], 0) << "the VMM's mapping must lose the page too";
}

// A VMM's 4 KiB RAM as a plain memfd (4 KiB page cache pages where shmem_enabled is "never"),
// mapped by the "VMM" (as create_shared would, but create_shared may pick a huge tmpfs).
Result<std::unique_ptr<RamBlock>> small_page_memfd_block(uint64_t size) {
  const int fd = memfd_create("ram", MFD_CLOEXEC);
  if (fd < 0 || ftruncate(fd, static_cast<off_t>(size)) != 0) return errno_status("memfd");
  return RamBlock::map_fd("ram", fd, 0, size, kSmallPage);
}

// populated() of a second mapping answers from the file: pages written through the other
// mapping count, holes and punched pages do not, over windows wider than one mincore batch and
// starting mid-file (the engine asks windows of 4096 pages and single pages).
TEST(SharedRam, PopulatedFollowsTheFileNotThisMapping) {
  constexpr uint64_t kPages = 3000;
  auto vmm = small_page_memfd_block(kPages * 4096);
  ASSERT_TRUE(vmm.is_ok()) << vmm.status().to_string();
  auto ternd = RamBlock::map_fd("ram", fcntl((*vmm)->fd(), F_DUPFD_CLOEXEC, 0), 0,
                                kPages * 4096, kSmallPage);
  ASSERT_TRUE(ternd.is_ok()) << ternd.status().to_string();
  if (!memfd_has_huge_pages()) EXPECT_FALSE((*ternd)->file_huge_pages());
  auto written = [](uint64_t p) { return p % 7 == 0 || (p >= 600 && p < 1700) || p == 2999; };
  for (uint64_t p = 0; p < kPages; ++p)
    if (written(p)) (*vmm)->base()[p * 4096 + 5] = 1;  // not mapped in ternd's mapping
  ASSERT_TRUE((*ternd)->discard(1000 * 4096, 4096).is_ok());
  (*ternd)->base()[2500 * 4096] = 2;  // and one written through ternd's own
  auto expect = [&](uint64_t p) { return p != 1000 && (written(p) || p == 2500); };
  for (uint64_t first : {0ull, 3ull, 599ull, 2990ull}) {
    const uint64_t count = kPages - first;
    std::vector<uint64_t> bits((count + 63) / 64, ~0ull);
    (*ternd)->populated(first, count, bits.data());
    for (uint64_t i = 0; i < count; ++i)
      ASSERT_EQ(((bits[i / 64] >> (i % 64)) & 1) != 0, expect(first + i))
          << "page " << first + i << " of a window from " << first;
  }
  for (uint64_t p : {0ull, 1ull, 999ull, 1000ull, 1701ull, 2500ull, 2998ull, 2999ull})
    EXPECT_EQ((*ternd)->populated(p), expect(p)) << "page " << p;
}

// The same for 2 MiB pages (hugetlbfs): a page written through the other mapping counts, one
// written through this one too (hugetlbfs may report every page as data: never a false hole).
TEST(SharedRam, PopulatedOfAHugetlbFileCountsWrittenPages) {
  constexpr uint64_t kPages = 3;
  auto vmm = RamBlock::create_shared("ram", kPages * kHugePage, kHugePage);
  if (!vmm) GTEST_SKIP() << "no hugetlb pages: " << vmm.status().message();
  auto ternd = RamBlock::map_fd("ram", fcntl((*vmm)->fd(), F_DUPFD_CLOEXEC, 0), 0,
                                kPages * kHugePage, kHugePage);
  ASSERT_TRUE(ternd.is_ok()) << ternd.status().to_string();
  (*vmm)->base()[0] = 1;
  (*ternd)->base()[2 * kHugePage + 7] = 2;
  uint64_t bits = 0;
  (*ternd)->populated(0, kPages, &bits);
  EXPECT_EQ(bits & 0b101, 0b101u) << "bits " << bits;
  EXPECT_TRUE((*ternd)->populated(0));
  EXPECT_TRUE((*ternd)->populated(2));
}

// Where memfds have 4 KiB pages, 4 KiB shared RAM sits on a private huge tmpfs: one write
// allocates 2 MiB, every mapping sees it, populated() counts the written page (and may count its
// huge page's neighbours: never a false hole), and a discard still empties 4 KiB in every mapping.
TEST(SharedRam, SmallPageRamSitsOnHugePagesWhereMemfdsHaveNone) {
  if (memfd_has_huge_pages()) GTEST_SKIP() << "this host's memfds have huge pages: no tmpfs needed";
  constexpr uint64_t kPages = 2048;  // 8 MiB
  if (auto probe = open_huge_tmpfs_file(kHugePage); !probe)
    GTEST_SKIP() << "no private tmpfs here: " << probe.status().message();
  else
    close(*probe);
  auto vmm = RamBlock::create_shared("ram", kPages * 4096, kSmallPage);
  ASSERT_TRUE(vmm.is_ok()) << vmm.status().to_string();
  auto ternd = RamBlock::map_fd("ram", fcntl((*vmm)->fd(), F_DUPFD_CLOEXEC, 0), 0,
                                kPages * 4096, kSmallPage);
  ASSERT_TRUE(ternd.is_ok()) << ternd.status().to_string();
  EXPECT_TRUE((*ternd)->file_huge_pages()) << "ternd's mapping must see huge pages";
  (*vmm)->base()[600 * 4096] = 9;  // in the second 2 MiB
  struct stat st {};
  ASSERT_EQ(fstat((*vmm)->fd(), &st), 0);
  EXPECT_EQ(static_cast<uint64_t>(st.st_blocks) * 512, kHugePage) << "one write, one huge page";
  EXPECT_EQ((*ternd)->base()[600 * 4096], 9);
  EXPECT_TRUE((*ternd)->populated(600));
  EXPECT_FALSE((*ternd)->populated(0)) << "the first 2 MiB was never written";
  EXPECT_FALSE((*ternd)->populated(1600));
  ASSERT_TRUE((*ternd)->discard(600 * 4096, 4096).is_ok());
  EXPECT_EQ((*vmm)->base()[600 * 4096], 0) << "the VMM's mapping must lose the page too";
}

TEST(SharedRam, AnAdoptedUserfaultfdTranslatesAddresses) {
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) GTEST_SKIP() << "userfaultfd: " << std::strerror(errno);
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_MISSING_SHMEM;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    close(fd);
    GTEST_SKIP() << "UFFDIO_API with shmem missing faults: " << std::strerror(errno);
  }
  auto vmm = RamBlock::create_shared("ram", kSize, kSmallPage);
  ASSERT_TRUE(vmm.is_ok());
  auto ternd = RamBlock::map_fd("ram", fcntl((*vmm)->fd(), F_DUPFD_CLOEXEC, 0), 0, kSize, kSmallPage);
  ASSERT_TRUE(ternd.is_ok());
  auto u = Userfault::adopt(fd, {{(*ternd)->base(), reinterpret_cast<uint64_t>((*vmm)->base()),
                                  kSize}});
  ASSERT_TRUE(u->register_range((*ternd)->base(), kSize, kSmallPage).is_ok());
  std::atomic<int> seen{-1};
  std::thread vcpu([&] { seen = (*vmm)->base()[5 * 4096 + 9]; });  // faults in the VMM's mapping
  uint64_t addr = 0;
  for (int i = 0; i < 5000 && u->read_faults(&addr, 1) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(addr, reinterpret_cast<uint64_t>((*ternd)->base() + 5 * 4096));
  std::vector<uint8_t> page(4096, 0x42);
  EXPECT_EQ(u->copy((*ternd)->base() + 5 * 4096, page.data(), 4096), 0);
  vcpu.join();
  EXPECT_EQ(seen.load(), 0x42);
  EXPECT_EQ((*ternd)->base()[5 * 4096], 0x42) << "the page landed in the shared file";
  EXPECT_TRUE(u->unregister_range((*ternd)->base(), kSize).is_ok());
}

// Zero-copy placement through a VMM's userfaultfd: the page is written through ternd's mapping
// (into the page cache), the VMM's thread takes a minor fault, and install() at ternd's address
// maps the page at the VMM's. The test registers the range itself, as the creator's features
// are not known to ternd (Userfault::minor_faults_missing), so the engine does not do it yet.
TEST(SharedRam, AnAdoptedUserfaultfdInstallsAtTheCreatorsAddress) {
#ifndef UFFD_FEATURE_MINOR_SHMEM
  GTEST_SKIP() << "kernel headers without userfaultfd minor faults";
#else
  int fd = static_cast<int>(syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK));
  if (fd < 0) GTEST_SKIP() << "userfaultfd: " << std::strerror(errno);
  uffdio_api api{};
  api.api = UFFD_API;
  api.features = UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_MINOR_SHMEM;
  if (ioctl(fd, UFFDIO_API, &api) != 0) {
    close(fd);
    GTEST_SKIP() << "UFFDIO_API with shmem minor faults: " << std::strerror(errno);
  }
  auto vmm = RamBlock::create_shared("ram", kSize, kSmallPage);
  ASSERT_TRUE(vmm.is_ok());
  auto ternd = RamBlock::map_fd("ram", fcntl((*vmm)->fd(), F_DUPFD_CLOEXEC, 0), 0, kSize, kSmallPage);
  ASSERT_TRUE(ternd.is_ok());
  const uint64_t remote = reinterpret_cast<uint64_t>((*vmm)->base());
  auto u = Userfault::adopt(fd, {{(*ternd)->base(), remote, kSize}});
  EXPECT_NE(u->minor_faults_missing(kSmallPage).find("minor-faults"), std::string::npos)
      << "an adopted userfaultfd must not claim minor faults: " << u->minor_faults_missing(kSmallPage);
  uint8_t* mine = (*ternd)->base() + 6 * 4096;
  std::memset(mine, 0x33, 4096);  // in the page cache, not yet in the VMM's mapping
  uffdio_register reg{};
  reg.range.start = remote;
  reg.range.len = kSize;
  reg.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_MINOR;
  ASSERT_EQ(ioctl(fd, UFFDIO_REGISTER, &reg), 0) << std::strerror(errno);
  std::atomic<int> seen{-1};
  std::thread vcpu([&] { seen = (*vmm)->base()[6 * 4096 + 17]; });  // a minor fault
  uint64_t addr = 0;
  for (int i = 0; i < 5000 && u->read_faults(&addr, 1) == 0; ++i)
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  EXPECT_EQ(addr, reinterpret_cast<uint64_t>(mine));
  const int rc = u->install(mine, 4096);
  EXPECT_EQ(rc, 0) << "UFFDIO_CONTINUE at the VMM's address: " << std::strerror(-rc);
  if (rc != 0) u.reset();  // closing the userfaultfd releases the waiting thread
  vcpu.join();
  EXPECT_EQ(seen.load(), 0x33);
  if (!u) return;
  EXPECT_EQ(u->install(mine, 4096), -EEXIST);
  EXPECT_TRUE(u->unregister_range((*ternd)->base(), kSize).is_ok());
#endif
}

}  // namespace
}  // namespace tern
