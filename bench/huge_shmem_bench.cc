// What a first write into a fresh file on huge tmpfs costs by how it is written (issue 12: the
// destination's CPU). Guest RAM of a 4K guest is such a file (dataplane/huge_tmpfs.h); precopy
// lands each received 4 KiB page of it once.
//   BM_HugeShmemFirstWrite: 64 MiB of a fresh huge=within_size tmpfs file, written once:
//     map_stores:   streaming stores through a shared mapping (the precopy landing of a block on
//                   THP: a fault per 2 MiB, and the kernel zeroes the fresh 2 MiB folio first);
//     pwritev_2m:   one pwritev per aligned 2 MiB, 512 iovecs of 4 KiB (shmem's write path does
//                   not zero a fresh folio that one write covers whole);
//     pwrite_4k:    one pwrite per 4 KiB page (each write covers part of the folio, so the
//                   kernel zeroes the rest of a fresh one);
//     gather_2m:    each 4 KiB page copied into a 2 MiB gather buffer first (a receiver that
//                   cannot point iovecs at where pages arrived), then one pwritev of it.
// CPU time of this thread per GiB written (CLOCK_THREAD_CPUTIME_ID: the kernel's work counts,
// other processes on a loaded host do not); the variants rotate inside each iteration. The
// kernel's zeroing share: `perf record -e cpu-clock -g` on this benchmark, clear_page*.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "dataplane/huge_tmpfs.h"
#include "dataplane/page_copy.h"

namespace tern {
namespace {

constexpr size_t kBytes = 64u << 20;
constexpr size_t kTwoMiB = 2u << 20;
constexpr size_t kPage = 4096;
constexpr size_t kPagesPerHuge = kTwoMiB / kPage;
constexpr double kGiB = static_cast<double>(kBytes) / (1u << 30);

double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// A fresh file of kBytes on a private huge tmpfs and a shared mapping of it.
struct HugeFile {
  int fd = -1;
  uint8_t* base = nullptr;
  HugeFile() {
    auto opened = open_huge_tmpfs_file(kBytes);
    if (!opened) return;
    fd = *opened;
    void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) base = static_cast<uint8_t*>(p);
  }
  ~HugeFile() {
    if (base) munmap(base, kBytes);
    if (fd >= 0) close(fd);
  }
};

void BM_HugeShmemFirstWrite(benchmark::State& state) {
  // Received pages: one 2 MiB buffer of non-zero data, as a channel's receive buffer.
  std::vector<uint8_t> payload(kTwoMiB);
  for (size_t i = 0; i < payload.size(); ++i) payload[i] = static_cast<uint8_t>(i * 131 + 7);
  std::vector<iovec> iov(kPagesPerHuge);
  for (size_t p = 0; p < kPagesPerHuge; ++p) iov[p] = {payload.data() + p * kPage, kPage};
  std::vector<uint8_t> gather(kTwoMiB);
  const iovec gathered{gather.data(), kTwoMiB};
  enum { kMapStores, kPwritev2M, kPwrite4K, kGather2M, kVariants };
  double cpu[kVariants] = {};
  for (auto _ : state) {
    for (int k = 0; k < kVariants; ++k) {
      const int v = (k + static_cast<int>(state.iterations())) % kVariants;  // rotate the order
      HugeFile file;
      if (file.base == nullptr) {
        state.SkipWithError("no huge tmpfs file (needs CAP_SYS_ADMIN)");
        return;
      }
      const double t0 = thread_cpu_s();
      for (size_t off = 0; off < kBytes; off += kTwoMiB) {
        if (v == kMapStores) {
          for (size_t p = 0; p < kTwoMiB; p += kPage)
            copy_streaming(file.base + off + p, payload.data() + p, kPage);
        } else if (v == kPwritev2M) {
          benchmark::DoNotOptimize(pwritev(file.fd, iov.data(), static_cast<int>(iov.size()),
                                           static_cast<off_t>(off)));
        } else if (v == kGather2M) {
          for (size_t p = 0; p < kTwoMiB; p += kPage)
            std::memcpy(gather.data() + p, payload.data() + p, kPage);
          benchmark::DoNotOptimize(pwritev(file.fd, &gathered, 1, static_cast<off_t>(off)));
        } else {
          for (size_t p = 0; p < kTwoMiB; p += kPage)
            benchmark::DoNotOptimize(
                pwrite(file.fd, payload.data() + p, kPage, static_cast<off_t>(off + p)));
        }
      }
      cpu[v] += thread_cpu_s() - t0;
    }
  }
  const double gib = kGiB * static_cast<double>(state.iterations());
  state.counters["map_stores_cpu_s_per_gib"] = cpu[kMapStores] / gib;
  state.counters["pwritev_2m_cpu_s_per_gib"] = cpu[kPwritev2M] / gib;
  state.counters["pwrite_4k_cpu_s_per_gib"] = cpu[kPwrite4K] / gib;
  state.counters["gather_2m_cpu_s_per_gib"] = cpu[kGather2M] / gib;
  state.counters["gather_2m_over_stores"] = cpu[kGather2M] / cpu[kMapStores];
  state.counters["pwritev_2m_over_stores"] = cpu[kPwritev2M] / cpu[kMapStores];
}
BENCHMARK(BM_HugeShmemFirstWrite)->Unit(benchmark::kMillisecond)->Iterations(6)->UseRealTime();

}  // namespace
}  // namespace tern
