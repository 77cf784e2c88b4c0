/* minimal_vmm: the smallest VMM that hands its guest to ternd through libtern-vmm.
 *
 * Its "guest" is one memfd of RAM and one "vCPU" thread that keeps rewriting random 4 KiB
 * pages with self-checking content (page number, version, a filler derived from both), logging
 * each write in its own dirty bitmap while ternd asks for dirty logging. Everything a real VMM
 * does for tern is here: regions by fd, pause/resume, dirty sync into the shared bitmap, state
 * as an opaque blob, a page self check. Precopy only (a destination that wants postcopy hands
 * over a userfaultfd: docs/embedding.md).
 *
 *   source:      minimal_vmm SOCKET [MiB]
 *   destination: minimal_vmm SOCKET [MiB] --incoming
 *
 * Build against the installed library: cc minimal_vmm.c $(pkg-config --cflags --libs tern-vmm)
 * -lpthread. Exits 0 when ternd detached cleanly (or, on the destination, after the guest ran
 * and its pages checked out), 1 otherwise. */
#define _GNU_SOURCE
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <tern-vmm.h>

#define PAGE 4096u

struct vm {
  uint8_t* ram;
  uint64_t size, pages;
  int fd;
  _Atomic uint64_t* dirty; /* the vCPU's own log: one bit per page */
  atomic_bool logging, stop_req, stopped, exit_req;
  uint64_t rng, writes; /* the "vCPU state" that migrates */
  pthread_t vcpu;
  pthread_mutex_t mu;
  pthread_cond_t cv;
  int running;
};

static uint64_t next_rand(uint64_t* s) {
  *s ^= *s << 13;
  *s ^= *s >> 7;
  *s ^= *s << 17;
  return *s;
}

static uint8_t filler(uint64_t page, uint64_t version) { return (uint8_t)(page * 31 + version); }

static void write_page(struct vm* vm, uint64_t page) {
  uint8_t* p = vm->ram + page * PAGE;
  uint64_t version;
  memcpy(&version, p + 8, 8);
  version++;
  memset(p + 16, filler(page, version), PAGE - 16);
  memcpy(p, &page, 8);
  memcpy(p + 8, &version, 8);
  if (atomic_load(&vm->logging))
    atomic_fetch_or(&vm->dirty[page / 64], (uint64_t)1 << (page % 64));
}

/* A page is good if never written (all zero) or consistent with its header. */
static int page_ok(const struct vm* vm, uint64_t page) {
  const uint8_t* p = vm->ram + page * PAGE;
  uint64_t num, version;
  memcpy(&num, p, 8);
  memcpy(&version, p + 8, 8);
  uint8_t want = version == 0 && num == 0 ? 0 : filler(page, version);
  if (version != 0 && num != page) return 0;
  for (uint32_t i = 16; i < PAGE; ++i)
    if (p[i] != want) return 0;
  return 1;
}

static void* vcpu_main(void* arg) {
  struct vm* vm = arg;
  pthread_mutex_lock(&vm->mu);
  while (!atomic_load(&vm->exit_req)) {
    if (atomic_load(&vm->stop_req)) {
      atomic_store(&vm->stopped, 1);
      pthread_cond_broadcast(&vm->cv);
      pthread_cond_wait(&vm->cv, &vm->mu);
      continue;
    }
    atomic_store(&vm->stopped, 0);
    pthread_mutex_unlock(&vm->mu);
    for (int i = 0; i < 64; ++i) {
      write_page(vm, next_rand(&vm->rng) % vm->pages);
      vm->writes++;
    }
    usleep(200); /* about 300k pages/s at most: a guest that dirties while it migrates */
    pthread_mutex_lock(&vm->mu);
  }
  pthread_mutex_unlock(&vm->mu);
  return NULL;
}

static int vm_pause(void* opaque) {
  struct vm* vm = opaque;
  pthread_mutex_lock(&vm->mu);
  atomic_store(&vm->stop_req, 1);
  while (vm->running && !atomic_load(&vm->stopped)) pthread_cond_wait(&vm->cv, &vm->mu);
  pthread_mutex_unlock(&vm->mu);
  return 0;
}

static int vm_resume(void* opaque) {
  struct vm* vm = opaque;
  pthread_mutex_lock(&vm->mu);
  atomic_store(&vm->stop_req, 0);
  pthread_cond_broadcast(&vm->cv);
  pthread_mutex_unlock(&vm->mu);
  if (!vm->running) {
    vm->running = 1;
    if (pthread_create(&vm->vcpu, NULL, vcpu_main, vm) != 0) return -1;
  }
  return 0;
}

static int vm_log_start(void* opaque) {
  atomic_store(&((struct vm*)opaque)->logging, 1);
  return 0;
}

static int vm_log_stop(void* opaque) {
  atomic_store(&((struct vm*)opaque)->logging, 0);
  return 0;
}

/* Moves the pages written since the last sync into ternd's bitmap. */
static int64_t vm_log_sync(void* opaque, uint64_t* bitmap, uint64_t words) {
  struct vm* vm = opaque;
  int64_t n = 0;
  for (uint64_t w = 0; w < (vm->pages + 63) / 64 && w < words; ++w) {
    uint64_t bits = atomic_exchange(&vm->dirty[w], 0);
    bitmap[w] |= bits;
    n += __builtin_popcountll(bits);
  }
  return n;
}

static int vm_save(void* opaque, void** data, size_t* len) {
  struct vm* vm = opaque;
  uint64_t* s = malloc(16);
  if (s == NULL) return -1;
  s[0] = vm->rng;
  s[1] = vm->writes;
  *data = s;
  *len = 16;
  return 0;
}

static int vm_load(void* opaque, const void* data, size_t len) {
  struct vm* vm = opaque;
  if (len != 16) return -1;
  memcpy(&vm->rng, data, 8);
  memcpy(&vm->writes, (const uint8_t*)data + 8, 8);
  return 0;
}

static int vm_verify(void* opaque, int full, struct tern_vmm_verify* out) {
  struct vm* vm = opaque;
  memset(out, 0, sizeof *out);
  if (!full) return 0;
  for (uint64_t p = 0; p < vm->pages; ++p) {
    out->pages_checked++;
    if (!page_ok(vm, p) && out->mismatches++ == 0)
      snprintf(out->first_mismatch, sizeof out->first_mismatch, "page %llu",
               (unsigned long long)p);
  }
  return 0;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s SOCKET [MiB] [--incoming]\n", argv[0]);
    return 2;
  }
  const int incoming = argc > 3 && strcmp(argv[3], "--incoming") == 0;
  struct vm vm;
  memset(&vm, 0, sizeof vm);
  vm.size = (uint64_t)(argc > 2 ? atoi(argv[2]) : 16) << 20;
  vm.pages = vm.size / PAGE;
  vm.rng = 0x9e3779b97f4a7c15ull;
  pthread_mutex_init(&vm.mu, NULL);
  pthread_cond_init(&vm.cv, NULL);
  vm.fd = memfd_create("guest-ram", MFD_CLOEXEC);
  if (vm.fd < 0 || ftruncate(vm.fd, (off_t)vm.size) != 0) return perror("memfd"), 1;
  vm.ram = mmap(NULL, vm.size, PROT_READ | PROT_WRITE, MAP_SHARED, vm.fd, 0);
  vm.dirty = calloc((vm.pages + 63) / 64, 8);
  if (vm.ram == MAP_FAILED || vm.dirty == NULL) return perror("mmap"), 1;
  if (!incoming) vm_resume(&vm); /* the source guest runs before and while it migrates */

  struct tern_vmm_region region = {"ram", vm.fd, 0, vm.size, 0, vm.ram, PAGE};
  struct tern_vmm_config config = {0};
  config.role = incoming ? TERN_VMM_DESTINATION : TERN_VMM_SOURCE;
  config.capabilities = TERN_VMM_CAP_STATE | TERN_VMM_CAP_SELF_CHECK |
                        (incoming ? 0 : TERN_VMM_CAP_DIRTY_LOG);
  config.vcpus = 1;
  config.description = "minimal_vmm example";
  config.regions = &region;
  config.n_regions = 1;
  config.userfaultfd = -1;
  struct tern_vmm_ops ops = {0};
  ops.pause = vm_pause;
  ops.resume = vm_resume;
  ops.dirty_log_start = vm_log_start;
  ops.dirty_log_stop = vm_log_stop;
  ops.dirty_log_sync = vm_log_sync;
  ops.save_state = vm_save;
  ops.load_state = vm_load;
  ops.verify = vm_verify;

  char err[512];
  struct tern_vmm* t = tern_vmm_attach(argv[1], &config, &ops, &vm, err, sizeof err);
  if (t == NULL) {
    fprintf(stderr, "minimal_vmm: attach: %s\n", err);
    return 1;
  }
  printf("attached (%s)\n", incoming ? "destination" : "source");
  fflush(stdout);
  int rc = tern_vmm_serve(t); /* this thread serves ternd until it detaches or goes away */
  printf("detached: %s; guest %s\n", tern_vmm_error(t),
         vm.running && !atomic_load(&vm.stop_req) ? "running" : "stopped");
  tern_vmm_detach(t, "");
  atomic_store(&vm.exit_req, 1);
  vm_resume(&vm);
  if (vm.running) pthread_join(vm.vcpu, NULL);
  return rc == 0 ? 0 : 1;
}
