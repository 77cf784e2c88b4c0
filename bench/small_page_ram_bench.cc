// What 4 KiB guest RAM costs ternd by where it lives (issue 13: the out-of-process guest): the
// anonymous memory of a guest inside ternd, on transparent huge pages, against the memfd a VMM
// shares with ternd (shmem: 4 KiB page cache pages where
// /sys/kernel/mm/transparent_hugepage/shmem_enabled is "never").
//   BM_SmallPageLanding: 64 MiB of fresh RAM written in 64 KiB runs of 4 KiB pages, as precopy
//     lands them: anon THP (streaming stores: one fault and one zeroing per 2 MiB), shmem
//     through a shared mapping (a fault and a zeroing per 4 KiB page), shmem by pwrite (what
//     the destination does for a memfd block: landing.h, BlockLanding::file).
//   BM_SmallPageRead: 64 MiB of populated RAM read through a mapping made for it, as the source
//     reads pages to send: anon THP (one PMD per 2 MiB) against a second mapping of a memfd
//     (4 KiB PTEs, fault-around maps 16 pages per fault).
// CPU time of this thread per 4 KiB page (CLOCK_THREAD_CPUTIME_ID: the kernel's work counts, a
// loaded host's other processes do not); the variants alternate inside each iteration.
#include <benchmark/benchmark.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include <cstring>
#include <vector>

#include "dataplane/page_copy.h"

namespace tern {
namespace {

constexpr size_t kBytes = 64u << 20;
constexpr size_t kRun = 64u << 10;
constexpr size_t kTwoMiB = 2u << 20;
constexpr double kPages = kBytes / 4096.0;

double thread_cpu_s() {
  timespec t{};
  clock_gettime(CLOCK_THREAD_CPUTIME_ID, &t);
  return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_nsec) * 1e-9;
}

// Anonymous memory aligned to 2 MiB with MADV_HUGEPAGE, as RamBlock::create maps a 4K block.
struct AnonRam {
  uint8_t* raw = nullptr;
  uint8_t* base = nullptr;
  AnonRam() {
    void* p = mmap(nullptr, kBytes + kTwoMiB, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (p == MAP_FAILED) return;
    raw = static_cast<uint8_t*>(p);
    base = reinterpret_cast<uint8_t*>((reinterpret_cast<uintptr_t>(raw) + kTwoMiB - 1) &
                                      ~uintptr_t{kTwoMiB - 1});
    madvise(base, kBytes, MADV_HUGEPAGE);
  }
  ~AnonRam() {
    if (raw) munmap(raw, kBytes + kTwoMiB);
  }
};

// A memfd of kBytes and a shared mapping of it (ternd's second mapping of a VMM's RAM).
struct ShmemRam {
  int fd = -1;
  uint8_t* base = nullptr;
  ShmemRam() {
    fd = memfd_create("small-page-bench", MFD_CLOEXEC);
    if (fd < 0 || ftruncate(fd, kBytes) != 0) return;
    void* p = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
    if (p != MAP_FAILED) base = static_cast<uint8_t*>(p);
  }
  ~ShmemRam() {
    if (base) munmap(base, kBytes);
    if (fd >= 0) close(fd);
  }
};

void BM_SmallPageLanding(benchmark::State& state) {
  std::vector<uint8_t> payload(kRun, 0x5a);
  enum { kAnon, kShmemStores, kShmemPwrite, kVariants };
  double cpu[kVariants] = {};
  for (auto _ : state) {
    for (int k = 0; k < kVariants; ++k) {
      const int v = (k + static_cast<int>(state.iterations())) % kVariants;  // rotate the order
      AnonRam anon;
      ShmemRam shm;
      uint8_t* dst = v == kAnon ? anon.base : shm.base;
      if (dst == nullptr) {
        state.SkipWithError("cannot map the RAM");
        return;
      }
      const double t0 = thread_cpu_s();
      for (size_t off = 0; off < kBytes; off += kRun) {
        if (v == kShmemPwrite)
          benchmark::DoNotOptimize(pwrite(shm.fd, payload.data(), kRun, static_cast<off_t>(off)));
        else
          copy_streaming(dst + off, payload.data(), kRun);
      }
      cpu[v] += thread_cpu_s() - t0;
    }
  }
  const double pages = kPages * static_cast<double>(state.iterations());
  state.counters["anon_thp_ns_per_page"] = cpu[kAnon] / pages * 1e9;
  state.counters["shmem_stores_ns_per_page"] = cpu[kShmemStores] / pages * 1e9;
  state.counters["shmem_pwrite_ns_per_page"] = cpu[kShmemPwrite] / pages * 1e9;
  state.counters["pwrite_over_anon"] = cpu[kShmemPwrite] / cpu[kAnon];
}
BENCHMARK(BM_SmallPageLanding)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

void BM_SmallPageRead(benchmark::State& state) {
  std::vector<uint8_t> out(kRun);
  double cpu[2] = {};
  for (auto _ : state) {
    for (int k = 0; k < 2; ++k) {
      const bool shmem = (k + state.iterations()) % 2;
      AnonRam anon;
      ShmemRam shm;
      uint8_t* ram = shmem ? shm.base : anon.base;
      if (ram == nullptr) {
        state.SkipWithError("cannot map the RAM");
        return;
      }
      std::memset(ram, 0x33, kBytes);  // populated (by the guest: not timed)
      uint8_t* view = ram;
      if (shmem) {  // ternd's own mapping of the VMM's file, never touched before
        void* p = mmap(nullptr, kBytes, PROT_READ, MAP_SHARED, shm.fd, 0);
        if (p == MAP_FAILED) {
          state.SkipWithError("cannot map the memfd twice");
          return;
        }
        view = static_cast<uint8_t*>(p);
      }
      const double t0 = thread_cpu_s();
      for (size_t off = 0; off < kBytes; off += kRun) std::memcpy(out.data(), view + off, kRun);
      benchmark::DoNotOptimize(out.data());
      cpu[shmem ? 1 : 0] += thread_cpu_s() - t0;
      if (shmem) munmap(view, kBytes);
    }
  }
  const double pages = kPages * static_cast<double>(state.iterations());
  state.counters["anon_thp_ns_per_page"] = cpu[0] / pages * 1e9;
  state.counters["shmem_second_mapping_ns_per_page"] = cpu[1] / pages * 1e9;
  state.counters["shmem_over_anon"] = cpu[1] / cpu[0];
}
BENCHMARK(BM_SmallPageRead)->Unit(benchmark::kMillisecond)->Iterations(3)->UseRealTime();

}  // namespace
}  // namespace tern
