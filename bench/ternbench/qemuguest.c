/* /init of tern-bench's QEMU reference guest (bench/ternbench/qemuref.py): the counterpart of
 * tern's thread guest inside a real Linux VM. A static program, the only file of its initramfs.
 *
 * From the kernel command line (unknown key=value parameters reach init as environment):
 *   tern_data=BYTES   bytes of anonymous memory filled with pseudo-random pages (like ternd
 *                     --prefill: every page of the working set written once, version 1)
 *   tern_rate=N       then page writes per second (a random page of the working set, rewritten
 *                     whole with its next version); 0 or 1 = idle, as tern's rate=1 barely writes
 *   tern_seed=N       PRNG seed
 * Console (ttyS0) protocol: prints "TERN-READY pages=N fill-ms=T" when filled, then idles or
 * dirties. A line "v" on the console checks every page against the version recorded for it and
 * prints "TERN-VERIFY pages=N mismatches=M writes=W seconds=S" (W page writes in S seconds since
 * READY: the dirty rate achieved) and " touches=T hist=LE:N,..." : how long the first touch
 * of each page since the last "r" line (answered "TERN-RESET") waited, the read of its version
 * entry and of one word of the page, in power-of-two microsecond buckets (LE = upper bound, as
 * tern's histograms): in postcopy, the slowest of them are the pages the destination faulted
 * on. Page content is a function of (index, version) only, so the destination can check what
 * the source wrote. A line "s" (sent to the destination once postcopy runs) sweeps: the first
 * touch of every page not touched since the reset, in a scattered order, as fast as it goes,
 * answered "TERN-SWEPT pages=N": postcopy faults by the thousand, not the few dozen that the
 * dirtying rate alone brings before the background push has moved every page. */
#define _GNU_SOURCE
#include <fcntl.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096u
#define WORDS (PAGE / 8u)

static uint64_t env_u64(const char* name, uint64_t dflt) {
  const char* v = getenv(name);
  return v && *v ? strtoull(v, NULL, 0) : dflt;
}

static double now_s(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static uint64_t mix(uint64_t x) { /* splitmix64 finaliser */
  x ^= x >> 30;
  x *= 0xbf58476d1ce4e5b9ull;
  x ^= x >> 27;
  x *= 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

static uint64_t seed;

/* Word 0 = index, word 1 = version, the rest an xorshift stream seeded by both. */
static void fill(uint64_t* p, uint64_t index, uint32_t version) {
  uint64_t s = mix(seed ^ (index * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)version << 40)) | 1;
  p[0] = index;
  p[1] = version;
  for (unsigned i = 2; i < WORDS; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    p[i] = s;
  }
}

static int check(const uint64_t* p, uint64_t index, uint32_t version) {
  uint64_t s = mix(seed ^ (index * 0x9e3779b97f4a7c15ull) ^ ((uint64_t)version << 40)) | 1;
  if (p[0] != index || p[1] != version) return 0;
  for (unsigned i = 2; i < WORDS; i++) {
    s ^= s << 13;
    s ^= s >> 7;
    s ^= s << 17;
    if (p[i] != s) return 0;
  }
  return 1;
}

static uint64_t hist[40];
static uint8_t* touched;

static void touch(const uint8_t* ram, const uint32_t* ver, uint64_t i) {
  if (touched[i]) return;
  touched[i] = 1;
  const double t0 = now_s();
  (void)*(volatile const uint32_t*)&ver[i];
  (void)*(volatile const uint64_t*)(ram + i * PAGE);
  const uint64_t us = (uint64_t)((now_s() - t0) * 1e6);
  unsigned b = 0;
  while (b < 39 && (1ull << b) <= us) b++; /* bucket b holds [2^(b-1), 2^b) us */
  hist[b]++;
}

static void console(void) {
  mkdir("/dev", 0755);
  mkdir("/proc", 0755);
  mount("devtmpfs", "/dev", "devtmpfs", 0, NULL);
  mount("proc", "/proc", "proc", 0, NULL);
  int fd = open("/dev/ttyS0", O_RDWR | O_NOCTTY);
  if (fd < 0) fd = open("/dev/console", O_RDWR | O_NOCTTY);
  if (fd >= 0) {
    dup2(fd, 0);
    dup2(fd, 1);
    dup2(fd, 2);
    if (fd > 2) close(fd);
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
}

int main(void) {
  console();
  const uint64_t bytes = env_u64("tern_data", 64u << 20);
  const uint64_t rate = env_u64("tern_rate", 0);
  seed = env_u64("tern_seed", 1);
  const uint64_t pages = bytes / PAGE;
  if (pages == 0) {
    printf("TERN-ERROR tern_data=%llu: less than a page\n", (unsigned long long)bytes);
    for (;;) pause();
  }
  uint8_t* ram = mmap(NULL, pages * PAGE, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS,
                      -1, 0);
  uint32_t* ver = calloc(pages, sizeof *ver);
  touched = calloc(pages, 1);
  if (ram == MAP_FAILED || !ver || !touched) {
    printf("TERN-ERROR cannot allocate %llu bytes\n", (unsigned long long)bytes);
    for (;;) pause();
  }
  madvise(ram, pages * PAGE, MADV_HUGEPAGE); /* fewer guest faults under TCG; content unchanged */
  const double t0 = now_s();
  for (uint64_t i = 0; i < pages; i++) {
    fill((uint64_t*)(ram + i * PAGE), i, 1);
    ver[i] = 1;
  }
  const double ready = now_s();
  printf("TERN-READY pages=%llu fill-ms=%.0f\n", (unsigned long long)pages, (ready - t0) * 1e3);

  uint64_t rng = mix(seed + 12345) | 1, writes = 0;
  char line[64];
  for (;;) {
    int timeout = -1;
    if (rate > 1) {
      /* Catch up with rate x elapsed (a poll of 1 ms sleeps a jiffy or more), in bursts of at
       * most 50 ms of writes so that the console stays served, then wait. */
      const uint64_t due = (uint64_t)((now_s() - ready) * (double)rate);
      for (uint64_t n = 0; writes < due && n < rate / 20 + 1; n++, writes++) {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        const uint64_t i = rng % pages;
        touch(ram, ver, i);
        uint32_t v = ver[i] + 1;
        if (v == 0) v = 1;
        fill((uint64_t*)(ram + i * PAGE), i, v);
        ver[i] = v;
      }
      timeout = 1;
    }
    struct pollfd pfd = {.fd = 0, .events = POLLIN};
    if (poll(&pfd, 1, timeout) <= 0 || !(pfd.revents & POLLIN)) continue;
    ssize_t n = read(0, line, sizeof line - 1);
    if (n <= 0) continue;
    line[n] = 0;
    if (line[0] == 's') {
      /* An odd stride visits every page when the page count is a power of two; otherwise in
       * order. */
      const uint64_t stride = (pages & (pages - 1)) == 0 ? 40503u % pages | 1u : 1u;
      uint64_t swept = 0;
      for (uint64_t k = 0, i = 0; k < pages; k++, i = (i + stride) % pages) {
        swept += !touched[i];
        touch(ram, ver, i);
      }
      printf("TERN-SWEPT pages=%llu\n", (unsigned long long)swept);
    } else if (line[0] == 'r') {
      memset(touched, 0, pages);
      memset(hist, 0, sizeof hist);
      printf("TERN-RESET\n");
    } else if (line[0] == 'v') {
      const double secs = now_s() - ready;
      uint64_t bad = 0, touches = 0;
      for (uint64_t i = 0; i < pages; i++) bad += !check((uint64_t*)(ram + i * PAGE), i, ver[i]);
      char h[40 * 24] = "", *o = h;
      for (unsigned b = 0; b < 40; b++) {
        touches += hist[b];
        if (hist[b])
          o += sprintf(o, "%s%llu:%llu", o == h ? "" : ",", 1ull << b,
                       (unsigned long long)hist[b]);
      }
      printf("TERN-VERIFY pages=%llu mismatches=%llu writes=%llu seconds=%.3f touches=%llu "
             "hist=%s\n", (unsigned long long)pages, (unsigned long long)bad,
             (unsigned long long)writes, secs, (unsigned long long)touches, h);
    }
  }
}
