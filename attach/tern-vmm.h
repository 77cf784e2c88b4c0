/* libtern-vmm: the C library a VMM links to hand its guest to ternd for live migration
 * (docs/embedding.md; the protocol: docs/attach-protocol.md). pkg-config name: tern-vmm.
 *
 * Use: fill a tern_vmm_config (role, capabilities, RAM regions as file descriptors) and a
 * tern_vmm_ops table of callbacks, call tern_vmm_attach(), then serve ternd's requests:
 * either from a thread of your own (tern_vmm_serve() until it returns), or from your event
 * loop (poll tern_vmm_fd() for POLLIN, then tern_vmm_dispatch(vmm, 0)). Callbacks run on the
 * thread that serves, one at a time. A callback returns 0 on success; on failure it may call
 * tern_vmm_fail() with a message and returns non-zero: ternd then gets that error.
 *
 * If ternd goes away (closes the socket, dies), serving returns -1 and tern_vmm_error() says
 * why; before that the library stops dirty logging it had started and resumes a source guest
 * that ternd paused, unless the guest's state had been handed over (it may run on the
 * destination then: it stays paused). The VMM may then attach to a new ternd.
 *
 * Threads: a tern_vmm is used by one thread at a time. The library never exits the process
 * and installs no signal handler (it sends with MSG_NOSIGNAL). */
#ifndef TERN_VMM_H
#define TERN_VMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define TERN_VMM_PROTOCOL_VERSION 1

#if defined(__GNUC__)
#define TERN_VMM_API __attribute__((visibility("default")))
#else
#define TERN_VMM_API
#endif

enum tern_vmm_role { TERN_VMM_SOURCE = 1, TERN_VMM_DESTINATION = 2 };

/* Capabilities: what the VMM offers (docs/attach-protocol.md, Capabilities). */
#define TERN_VMM_CAP_DIRTY_LOG (1u << 0)  /* dirty_log_start/stop/sync (source) */
#define TERN_VMM_CAP_STATE (1u << 1)      /* save_state / load_state */
#define TERN_VMM_CAP_POSTCOPY (1u << 2)   /* a userfaultfd (destination) */
#define TERN_VMM_CAP_THROTTLE (1u << 3)   /* set_penalty, ring_counters, limit_tracking (S4) */
#define TERN_VMM_CAP_FREE_PAGES (1u << 4) /* free_pages_* (S5) */
#define TERN_VMM_CAP_SELF_CHECK (1u << 5) /* verify */
/* With TERN_VMM_CAP_POSTCOPY: the userfaultfd was created with minor faults for the regions'
 * memory (UFFD_FEATURE_MINOR_SHMEM for 4 KiB regions on memfd, UFFD_FEATURE_MINOR_HUGETLBFS for
 * 2 MiB ones): ternd then places postcopy pages zero-copy (page cache + UFFDIO_CONTINUE). */
#define TERN_VMM_CAP_MINOR_FAULTS (1u << 6)

/* One RAM region: `size` bytes of the file `fd` from `fd_offset`, mapped MAP_SHARED by the VMM
 * at `host_addr`, seen by the guest at `guest_phys_addr`. fd: a memfd or hugetlbfs file; the
 * library sends a copy, the VMM keeps its own. host_page_size: 4096 or 2097152. */
struct tern_vmm_region {
  const char* name;
  int fd;
  uint64_t fd_offset;
  uint64_t size;
  uint64_t guest_phys_addr;
  void* host_addr;
  uint32_t host_page_size;
};

struct tern_vmm_config {
  enum tern_vmm_role role;
  uint64_t capabilities;          /* TERN_VMM_CAP_* offered */
  uint32_t vcpus;
  const char* description;        /* shown by ternd ("my-vmm: 2 vCPUs, 1 GiB") */
  const struct tern_vmm_region* regions;
  size_t n_regions;
  int userfaultfd;                /* destination with TERN_VMM_CAP_POSTCOPY, else -1: created
                                     by the VMM (UFFDIO_API done), regions not registered */
  int connect_timeout_ms;         /* wait for the socket to appear; 0: 10000 */
};

struct tern_vmm_free_range {
  uint32_t region;
  uint64_t offset; /* bytes into the region, 4 KiB aligned */
  uint64_t length;
};

struct tern_vmm_verify {
  uint64_t pages_checked, mismatches, touched_checked, touched_mismatches;
  char first_mismatch[256];
};

struct tern_vmm;

struct tern_vmm_ops {
  /* Stop every vCPU at a point where guest memory is consistent; return once stopped. */
  int (*pause)(void* opaque);
  /* Start (destination: first start) or resume the vCPUs. */
  int (*resume)(void* opaque);
  int (*dirty_log_start)(void* opaque);
  int (*dirty_log_stop)(void* opaque);
  /* OR into `bitmap` (the regions in order, each starting on a word: one bit per 4 KiB page)
   * every page written since the last sync or dirty_log_start; return the pages set or -1. */
  int64_t (*dirty_log_sync)(void* opaque, uint64_t* bitmap, uint64_t words);
  /* The device and vCPU state: *data from malloc() (the library frees it), *len its size. */
  int (*save_state)(void* opaque, void** data, size_t* len);
  int (*load_state)(void* opaque, const void* data, size_t len);
  /* Optional (NULL unless the matching capability is offered). */
  int (*set_penalty)(void* opaque, uint32_t vcpu, uint64_t microseconds);
  /* dirty pages, ring-full exits, ring-full ns, penalty ns, ops, last exit ns, pages at it */
  int (*ring_counters)(void* opaque, uint32_t vcpu, uint64_t out[7]);
  int (*limit_tracking)(void* opaque, int on);
  int (*free_pages_start)(void* opaque);
  /* *out from malloc() (the library frees it); returns the count or -1. */
  int64_t (*free_pages_take)(void* opaque, struct tern_vmm_free_range** out);
  int (*free_pages_stop)(void* opaque);
  /* full = 1: check every page (guest paused); 0: counters of first-touch checks so far. */
  int (*verify)(void* opaque, int full, struct tern_vmm_verify* out);
};

/* Connects to ternd's attach socket and attaches (HELLO, REGIONs, READY). Returns NULL on
 * failure with the reason in err (if err is not NULL). */
TERN_VMM_API struct tern_vmm* tern_vmm_attach(const char* socket_path, const struct tern_vmm_config* config,
                                 const struct tern_vmm_ops* ops, void* opaque, char* err,
                                 size_t err_len);
/* The socket to poll for POLLIN in the VMM's own event loop. */
TERN_VMM_API int tern_vmm_fd(const struct tern_vmm* vmm);
/* Serves at most one request, waiting up to timeout_ms (-1: forever). 1: served one;
 * 0: none came; -1: detached or failed (tern_vmm_error says why). */
TERN_VMM_API int tern_vmm_dispatch(struct tern_vmm* vmm, int timeout_ms);
/* Serves until ternd detaches or the connection fails; returns 0 on a clean detach, else -1. */
TERN_VMM_API int tern_vmm_serve(struct tern_vmm* vmm);
/* Called by a failing callback: the message ternd gets. */
TERN_VMM_API void tern_vmm_fail(struct tern_vmm* vmm, const char* message);
/* Why the attachment ended ("" while it lasts). */
TERN_VMM_API const char* tern_vmm_error(const struct tern_vmm* vmm);
/* Capabilities ternd accepted. */
TERN_VMM_API uint64_t tern_vmm_capabilities(const struct tern_vmm* vmm);
/* Tells ternd the VMM leaves (best effort), closes the socket and frees everything. */
TERN_VMM_API void tern_vmm_detach(struct tern_vmm* vmm, const char* reason);

#ifdef __cplusplus
}
#endif

#endif /* TERN_VMM_H */
