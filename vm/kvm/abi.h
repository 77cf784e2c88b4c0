/* The contract between the KVM guest program (vm/kvm/guest/guest.c, freestanding C) and the
 * VMM (vm/kvm/kvm_*.cc): guest-physical layout, the config page, the per-vCPU area, the I/O ports.
 * Plain C so both sides include it. All guest RAM is one slot at guest-physical 0; the guest
 * runs in 64-bit long mode on an identity map of 2 MiB pages built by the VMM.
 *
 *   0x001000  PML4          0x002000  PDPT          0x003000 .. 0x012fff  16 PDs (16 GiB)
 *   0x013000  GDT           0x014000  config page   0x015000  per-vCPU areas (64 x 256 B)
 *   0x019000  free page reporting control (host writes)
 *   0x01a000  free page report rings, one per vCPU (1 KiB each, 24)
 *   0x020000  stacks (vCPU i: top at 0x20000 + (i + 1) * 0x4000, 16 KiB each, up to 24)
 *   0x100000  guest program (< 1 MiB)
 *   0x200000  version table: one uint32 per 4 KiB page of RAM (0 = never written)
 *   data_first_page .. : the working set, split into one disjoint slice per vCPU
 *
 * A page the guest wrote holds, in its first 8 bytes, (page << 32) | version; the rest of the
 * page stays zero. A page its heap freed has TERN_KVM_FREE set in its table entry: its content
 * is dead (never checked) until the page is reused, which writes it whole with a new version. About one store per dirtied page: guest instructions are slow under
 * emulating hosts (kvm_pvm), and the dirty tracking only needs the page to change. */
#ifndef TERN_VM_KVM_ABI_H
#define TERN_VM_KVM_ABI_H

#include <stdint.h>

#define TERN_KVM_PML4 0x1000ull
#define TERN_KVM_PDPT 0x2000ull
#define TERN_KVM_PD 0x3000ull
#define TERN_KVM_PD_COUNT 16u /* 16 GiB of 2 MiB identity mappings */
#define TERN_KVM_GDT 0x13000ull
#define TERN_KVM_CONFIG 0x14000ull
#define TERN_KVM_AREAS 0x15000ull
#define TERN_KVM_STACKS 0x20000ull
#define TERN_KVM_STACK_SIZE 0x4000ull
#define TERN_KVM_CODE 0x100000ull
#define TERN_KVM_CODE_MAX 0x100000ull
#define TERN_KVM_TABLE 0x200000ull
#define TERN_KVM_MAX_VCPUS 24u
#define TERN_KVM_MAX_RAM (16ull << 30)
#define TERN_KVM_REPORT 0x19000ull
#define TERN_KVM_REPORT_RINGS 0x1a000ull
#define TERN_KVM_REPORT_RING_SIZE 0x400ull
#define TERN_KVM_FREE 0x80000000u /* table entry: the heap freed the page */

/* Ports (OUT from the guest, KVM_EXIT_IO on the host). The 32-bit value is the vCPU index;
 * details are in the vCPU's area. */
#define TERN_KVM_PORT_PROGRESS 0x510 /* a batch of operations is done: host may pace / pause */
#define TERN_KVM_PORT_MISMATCH 0x511 /* a page did not match the table: see bad_* fields */
#define TERN_KVM_PORT_PANIC 0x512    /* the config page is wrong: the guest stops */
#define TERN_KVM_PORT_FREE_REPORT 0x513 /* doorbell: the vCPU's report ring has entries to take */

#define TERN_KVM_CONFIG_MAGIC 0x6e7265746b766d31ull /* "1mvkretn" */

enum tern_kvm_pattern { TERN_KVM_SEQUENTIAL = 0, TERN_KVM_RANDOM = 1, TERN_KVM_HOTSET = 2 };

/* Written by the VMM before the first run; read-only to the guest. */
struct tern_kvm_config {
  uint64_t magic;
  uint64_t vcpus;
  uint64_t total_pages;     /* 4 KiB pages of RAM */
  uint64_t data_first_page; /* first page of the working set */
  uint64_t wss_pages;       /* working set, all vCPUs together */
  uint64_t pattern;         /* enum tern_kvm_pattern */
  uint64_t hot_write_pct;   /* hotset: this share of operations ... */
  uint64_t hot_set_pct;     /* ... goes to this first share of the vCPU's slice */
  uint64_t read_pct;        /* share of operations that only read (check) a page */
  uint64_t batch;           /* operations between two PROGRESS exits */
  uint64_t seed;
  uint8_t vcpu_read_pct[TERN_KVM_MAX_VCPUS]; /* per-vCPU read share; 0xff = read_pct */
  /* Heap (WorkloadSpec free=, reuse=): at its first run each vCPU writes and then frees this
   * share of its slice, in units of unit_pages (the host page: whole huge pages are freed);
   * reuse_pct of its operations churn the heap: half reuse a free unit, half free one. */
  uint64_t free_pct;
  uint64_t reuse_pct;
  uint64_t unit_pages;
};

/* One per vCPU, written by the guest (its own), read by the VMM at its exits. Cumulative. */
struct tern_kvm_area {
  uint64_t rng;    /* xorshift64 state (0 = not started: seeded from config) */
  uint64_t cursor; /* sequential pattern position in the slice */
  uint64_t ops;    /* operations done (reads + writes) */
  uint64_t writes;
  uint64_t reads;
  uint64_t checks; /* pages checked against the table (every operation checks) */
  uint64_t mismatches;
  uint64_t bad_page; /* last mismatch: page, word found, word expected */
  uint64_t bad_found;
  uint64_t bad_expected;
  uint64_t frees;          /* heap: pages freed (the first share included) */
  uint64_t reuses;         /* heap: freed pages written again */
  uint64_t heap_ready;     /* heap: the first share has been freed */
  uint64_t report_session; /* reporting: the session whose whole free set was reported */
  uint64_t report_dropped; /* reporting: frees not reported (ring still full after a doorbell) */
  uint64_t pad[17];
};

/* Free page reporting (S5), modelled on virtio-balloon's free page hinting:
 *  - the host asks for reports by writing a non-zero cmd (and a new session) into the control
 *    block; cmd 0 = stop. The host changes cmd after each dirty-log collection;
 *  - the guest, at the start of each batch of operations, reads cmd. In a new session it first
 *    reports its whole free set, rings the doorbell and records the session in its area (the
 *    acknowledgement the host waits for, bounded); then it reports each unit it frees;
 *  - a report is an entry (first page, pages, cmd) in the vCPU's ring. The host takes entries
 *    at the doorbell and at every PROGRESS exit and acknowledges them (tail = head). A full
 *    ring after a doorbell drops the report: the guest never waits and keeps no reserve;
 *  - the host keeps only entries carrying the current cmd: a report made after the cmd was
 *    published came after the last collection, so a write that reuses the page follows it and
 *    reaches a later collection, applied after the hint (the engine's order). */
struct tern_kvm_report_ctl {
  uint64_t cmd;     /* 0 = not reporting; else the id reports carry (32 bits) */
  uint64_t session; /* a new value: report the whole free set again */
};

struct tern_kvm_report_entry {
  uint64_t first_page;
  uint32_t pages;
  uint32_t cmd;
};

#define TERN_KVM_REPORT_SLOTS 63u
/* One per vCPU at TERN_KVM_REPORT_RINGS + vcpu * TERN_KVM_REPORT_RING_SIZE. head: written by
 * the guest (entries posted, free-running); tail: by the host (entries taken). */
struct tern_kvm_report_ring {
  uint32_t head;
  uint32_t tail;
  uint64_t pad;
  struct tern_kvm_report_entry e[TERN_KVM_REPORT_SLOTS];
};

static inline uint64_t tern_kvm_word(uint64_t page, uint32_t version) {
  return version ? (page << 32) | version : 0;
}

#endif
