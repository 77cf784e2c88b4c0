/* The KVM guest program: a freestanding 64-bit workload (see vm/kvm/abi.h for the layout).
 * Entered by every vCPU at _start with rdi = vCPU index and its own stack. Each operation picks
 * a page of the vCPU's slice by the configured pattern, checks the page's first word against
 * the version table, then (unless it is a read) writes version + 1 and records it in the table.
 * With a heap (free=, reuse=) it frees a share of its slice once, skips free pages, churns the
 * heap, and reports what it frees through its report ring (free page reporting, abi.h).
 * Every `batch` operations it reports progress through port I/O, where the VMM paces, pauses
 * and counts; everything the program needs lives in guest RAM or registers, so it simply goes
 * on where it was after a migration. */
#include "../abi.h"

#define VERSION_MASK (TERN_KVM_FREE - 1u)

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

/* One vCPU's view of its heap: the slice [first, first + per) and the whole units in it. */
struct heap {
  volatile struct tern_kvm_area *a;
  volatile struct tern_kvm_report_ring *ring;
  volatile uint32_t *table;
  uint64_t vcpu, first, per, unit, unit_lo, unit_hi; /* units [unit_lo, unit_hi) */
  uint32_t cmd; /* report id for this batch; 0 = not reporting */
};

static int unit_free(const struct heap *h, uint64_t u) { return h->table[u * h->unit] & TERN_KVM_FREE; }

/* Posts one report; when the ring is full, rings the doorbell first (the host takes the entries
 * during that exit). Still full: the report is dropped, never waited for. */
static void report(struct heap *h, uint64_t page, uint64_t pages) {
  volatile struct tern_kvm_report_ring *r = h->ring;
  if (!h->cmd) return;
  if (r->head - r->tail >= TERN_KVM_REPORT_SLOTS) {
    out32(TERN_KVM_PORT_FREE_REPORT, (uint32_t)h->vcpu);
    if (r->head - r->tail >= TERN_KVM_REPORT_SLOTS) {
      h->a->report_dropped = h->a->report_dropped + 1;
      return;
    }
  }
  volatile struct tern_kvm_report_entry *e = &r->e[r->head % TERN_KVM_REPORT_SLOTS];
  e->first_page = page;
  e->pages = (uint32_t)pages;
  e->cmd = h->cmd;
  r->head = r->head + 1; /* volatile stores keep their order; x86 keeps it for the host */
}

static void free_unit(struct heap *h, uint64_t u) {
  for (uint64_t p = u * h->unit; p < (u + 1) * h->unit; ++p) h->table[p] = h->table[p] | TERN_KVM_FREE;
  h->a->frees = h->a->frees + h->unit;
  report(h, u * h->unit, h->unit);
}

/* Reuse: every page of the unit written whole with a new version (so no dead content is live). */
static void reuse_unit(struct heap *h, uint64_t u) {
  for (uint64_t p = u * h->unit; p < (u + 1) * h->unit; ++p) {
    uint32_t v = (h->table[p] & VERSION_MASK) + 1;
    if (v > VERSION_MASK) v = 1;
    *(volatile uint64_t *)(p << 12) = tern_kvm_word(p, v);
    h->table[p] = v;
  }
  h->a->reuses = h->a->reuses + h->unit;
}

/* The first run: the heap used its free share (pages never written get version 1), then freed
 * it; spread evenly over the slice's units. */
static void heap_init(struct heap *h, uint64_t free_pct) {
  for (uint64_t u = h->unit_lo; u < h->unit_hi; ++u) {
    const uint64_t i = u - h->unit_lo;
    if ((i + 1) * free_pct / 100 == i * free_pct / 100) continue;
    for (uint64_t p = u * h->unit; p < (u + 1) * h->unit; ++p)
      if ((h->table[p] & VERSION_MASK) == 0) {
        *(volatile uint64_t *)(p << 12) = tern_kvm_word(p, 1);
        h->table[p] = 1;
      }
    free_unit(h, u);
  }
  h->a->heap_ready = 1;
}

/* A new session: the whole free set, runs of free units as one range each, then the doorbell so
 * the host holds all of it before the acknowledgement. */
static void report_all(struct heap *h, uint64_t session) {
  for (uint64_t u = h->unit_lo; u < h->unit_hi;) {
    if (!unit_free(h, u)) {
      ++u;
      continue;
    }
    uint64_t end = u + 1;
    while (end < h->unit_hi && unit_free(h, end) && (end - u + 1) * h->unit <= 0xffffffffu) ++end;
    report(h, u * h->unit, (end - u) * h->unit);
    u = end;
  }
  out32(TERN_KVM_PORT_FREE_REPORT, (uint32_t)h->vcpu);
  h->a->report_session = session;
}

/* The first unit at or after `u` (wrapping) that is free (want_free) or in use; ~0 if none. */
static uint64_t find_unit(const struct heap *h, uint64_t u, int want_free) {
  for (uint64_t n = h->unit_hi - h->unit_lo; n; --n, ++u) {
    if (u >= h->unit_hi) u = h->unit_lo;
    if (!unit_free(h, u) == !want_free) return u;
  }
  return ~0ull;
}

void _start(uint64_t vcpu) __attribute__((noreturn, section(".text.start")));

void _start(uint64_t vcpu) {
  const volatile struct tern_kvm_config *cfg = (const volatile struct tern_kvm_config *)TERN_KVM_CONFIG;
  const volatile struct tern_kvm_report_ctl *ctl = (const volatile struct tern_kvm_report_ctl *)TERN_KVM_REPORT;
  volatile struct tern_kvm_area *a = (volatile struct tern_kvm_area *)TERN_KVM_AREAS + vcpu;
  volatile uint32_t *table = (volatile uint32_t *)TERN_KVM_TABLE;
  const uint64_t unit = cfg->unit_pages ? cfg->unit_pages : 1;
  if (cfg->magic != TERN_KVM_CONFIG_MAGIC || vcpu >= cfg->vcpus || cfg->wss_pages < cfg->vcpus ||
      (unit & (unit - 1)))
    for (;;) out32(TERN_KVM_PORT_PANIC, (uint32_t)vcpu);

  const uint64_t per = cfg->wss_pages / cfg->vcpus;
  const uint64_t first = cfg->data_first_page + vcpu * per;
  uint64_t hot = per * cfg->hot_set_pct / 100;
  if (hot == 0) hot = 1;
  const uint64_t own_read = cfg->vcpu_read_pct[vcpu];
  const uint64_t read_pct = own_read != 0xff ? own_read : cfg->read_pct;
  const uint64_t pattern = cfg->pattern, hot_pct = cfg->hot_write_pct;
  const uint64_t batch = cfg->batch ? cfg->batch : 1;
  const uint64_t free_pct = cfg->free_pct, reuse_pct = cfg->reuse_pct;
  const int heap_on = free_pct || reuse_pct;
  struct heap h = {a, (volatile struct tern_kvm_report_ring *)(TERN_KVM_REPORT_RINGS + vcpu * TERN_KVM_REPORT_RING_SIZE),
                   table, vcpu, first, per, unit, (first + unit - 1) / unit, (first + per) / unit, 0};
  if (h.unit_hi < h.unit_lo) h.unit_hi = h.unit_lo;
  if (a->rng == 0) a->rng = (cfg->seed + 1) * 0x9e3779b97f4a7c15ull + vcpu * 0xbf58476d1ce4e5b9ull + 1;
  if (heap_on && !a->heap_ready) heap_init(&h, free_pct);

  for (;;) {
    h.cmd = (uint32_t)ctl->cmd;
    const uint64_t session = ctl->session;
    if (h.cmd && session != a->report_session) {
      if (heap_on) report_all(&h, session);
      else a->report_session = session;
    }
    uint64_t rng = a->rng, cursor = a->cursor;
    uint64_t writes = 0, reads = 0, checks = 0;
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
      uint64_t page = first + idx;
      if (heap_on && reuse_pct && (r >> 40) % 100 < reuse_pct) {
        const int reuse = (int)((r >> 56) & 1);
        const uint64_t u = find_unit(&h, page / unit, reuse);
        if (u != ~0ull) {
          if (reuse) reuse_unit(&h, u);
          else free_unit(&h, u);
        }
        ++writes; /* a churn operation writes (a unit, or its table entries): paced as one */
        continue;
      }
      if (heap_on && (table[page] & TERN_KVM_FREE)) {
        ++reads; /* a free page is not used (no scan for another: guest code is slow where
                    KVM emulates it), counted with the reads; it checks nothing */
        continue;
      }
      volatile uint64_t *word = (volatile uint64_t *)(page << 12);
      const uint32_t v = table[page];
      const uint64_t found = *word, expected = tern_kvm_word(page, v);
      ++checks;
      if (found != expected) {
        a->bad_page = page;
        a->bad_found = found;
        a->bad_expected = expected;
        a->mismatches = a->mismatches + 1;
        out32(TERN_KVM_PORT_MISMATCH, (uint32_t)vcpu);
      }
      if (read_pct && (r >> 16) % 100 < read_pct) {
        ++reads;
      } else {
        const uint32_t nv = v + 1 > VERSION_MASK ? 1 : v + 1;
        *word = tern_kvm_word(page, nv);
        table[page] = nv;
        ++writes;
      }
    }
    a->rng = rng;
    a->cursor = cursor;
    a->writes = a->writes + writes;
    a->reads = a->reads + reads;
    a->checks = a->checks + checks;
    a->ops = a->ops + batch;
    out32(TERN_KVM_PORT_PROGRESS, (uint32_t)vcpu);
  }
}
