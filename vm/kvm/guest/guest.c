/* The KVM guest program: a freestanding 64-bit workload (see vm/kvm/abi.h for the layout).
 * Entered by every vCPU at _start with rdi = vCPU index and its own stack. Each operation picks
 * a page of the vCPU's slice by the configured pattern, checks the page's first word against
 * the version table, then (unless it is a read) writes version + 1 and records it in the table.
 * Every `batch` operations it reports progress through port I/O, where the VMM paces, pauses
 * and counts; everything the program needs lives in guest RAM or registers, so it simply goes
 * on where it was after a migration. */
#include "../abi.h"

static inline void out32(uint16_t port, uint32_t v) {
  __asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port) : "memory");
}

static inline uint64_t next_rng(uint64_t *s) {
  uint64_t x = *s;
  x ^= x << 13;
  x ^= x >> 7;
  x ^= x << 17;
  *s = x;
  return x;
}

void _start(uint64_t vcpu) __attribute__((noreturn, section(".text.start")));

void _start(uint64_t vcpu) {
  const volatile struct tern_kvm_config *cfg = (const volatile struct tern_kvm_config *)TERN_KVM_CONFIG;
  volatile struct tern_kvm_area *a = (volatile struct tern_kvm_area *)TERN_KVM_AREAS + vcpu;
  volatile uint32_t *table = (volatile uint32_t *)TERN_KVM_TABLE;
  if (cfg->magic != TERN_KVM_CONFIG_MAGIC || vcpu >= cfg->vcpus || cfg->wss_pages < cfg->vcpus)
    for (;;) out32(TERN_KVM_PORT_PANIC, (uint32_t)vcpu);

  const uint64_t per = cfg->wss_pages / cfg->vcpus;
  const uint64_t first = cfg->data_first_page + vcpu * per;
  uint64_t hot = per * cfg->hot_set_pct / 100;
  if (hot == 0) hot = 1;
  const uint64_t own_read = cfg->vcpu_read_pct[vcpu];
  const uint64_t read_pct = own_read != 0xff ? own_read : cfg->read_pct;
  const uint64_t pattern = cfg->pattern, hot_pct = cfg->hot_write_pct;
  const uint64_t batch = cfg->batch ? cfg->batch : 1;
  if (a->rng == 0) a->rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15ull + vcpu * 0xbf58476d1ce4e5b9ull + 1;

  for (;;) {
    uint64_t rng = a->rng, cursor = a->cursor;
    uint64_t writes = 0, reads = 0, bad = 0;
    for (uint64_t i = 0; i < batch; ++i) {
      uint64_t r = next_rng(&rng), idx;
      if (pattern == TERN_KVM_SEQUENTIAL) {
        idx = cursor;
        cursor = cursor + 1 == per ? 0 : cursor + 1;
      } else if (pattern == TERN_KVM_HOTSET && (r >> 32) % 100 < hot_pct) {
        idx = (r & 0xffffffffu) % hot;
      } else {
        idx = (r & 0xffffffffu) % per;
      }
      const uint64_t page = first + idx;
      volatile uint64_t *word = (volatile uint64_t *)(page << 12);
      const uint32_t v = table[page];
      const uint64_t found = *word, expected = tern_kvm_word(page, v);
      if (found != expected) {
        ++bad;
        a->bad_page = page;
        a->bad_found = found;
        a->bad_expected = expected;
        a->mismatches = a->mismatches + 1;
        out32(TERN_KVM_PORT_MISMATCH, (uint32_t)vcpu);
      }
      if (read_pct && (r >> 16) % 100 < read_pct) {
        ++reads;
      } else {
        *word = tern_kvm_word(page, v + 1);
        table[page] = v + 1;
        ++writes;
      }
    }
    a->rng = rng;
    a->cursor = cursor;
    a->writes = a->writes + writes;
    a->reads = a->reads + reads;
    a->checks = a->checks + batch;
    a->ops = a->ops + batch;
    out32(TERN_KVM_PORT_PROGRESS, (uint32_t)vcpu);
  }
}
