// The engine's public face: start, watch, steer and cancel one live migration, as the source
// (OutgoingMigration) or the destination (IncomingMigration). Names follow QEMU's QMP.
//
// Threads: every method may be called from any thread; each object runs its own control thread
// and worker threads, and never exits the process.
#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "dataplane/guest.h"
#include "dataplane/histogram.h"
#include "dataplane/peer_key.h"
#include "dataplane/status.h"
#include "dataplane/tls_credentials.h"

namespace tern {

struct MigrationCapabilities {
  bool postcopy_ram = false;      // "postcopy-ram"
  bool postcopy_preempt = false;  // "postcopy-preempt": urgent pages may cut into a huge page
  bool dirty_limit = false;       // "dirty-limit": throttle vCPUs (S4) when precopy cannot keep up
  // "__io.github.tern_free-page-hint": skip the pages the guest reports free (S5). QEMU has no
  // migration capability for this (its equivalent is virtio-balloon's free-page-hint property).
  bool free_page_hint = false;
};

struct MigrationParameters {
  uint32_t multifd_channels = 2;     // "multifd-channels": bulk channels
  uint64_t max_bandwidth = 0;        // "max-bandwidth": bytes per second, 0 = unlimited
  uint64_t downtime_limit_ms = 300;  // "downtime-limit"
  uint32_t chunk_size = 64 * 1024;   // bytes per frame; a huge page is preemptible between chunks
  uint32_t workers = 0;              // worker threads per side; 0 = min(bulk channels, cores)
  bool pin_workers = true;           // pin workers to cores chosen with hwloc
  uint32_t max_rounds = 30;          // precopy rounds before forcing switchover
  uint64_t vcpu_dirty_limit = 1;     // "vcpu-dirty-limit": MB/s per vCPU under the dirty-limit cap
  uint64_t vcpu_dirty_limit_period_ms = 1000;  // "x-vcpu-dirty-limit-period": throttle loop
  // ext::kHandshakeTimeout: the source's bound on connecting its channels (hellos and channel
  // handshake included) and on a resume's reconnect; the destination's bound on each
  // connection's hello and handshake (Transport::set_handshake_timeout).
  std::chrono::milliseconds connect_timeout{10000};
  // ext::kPostcopyPeerTimeout: in postcopy, a peer silent this long (no keepalive, which each
  // side sends every 100 ms) breaks the link: both sides go to postcopy-paused.
  std::chrono::milliseconds postcopy_peer_timeout{10000};
  // Every channel proves it knows this key, both ways, before it is used (docs/security.md);
  // nullptr: unauthenticated (a program that allows that says so: ternd --insecure).
  std::shared_ptr<const PeerKey> peer_key;
  // QEMU's tls-creds / tls-hostname / tls-authz: TLS 1.3 with x509 under every channel on tcp;
  // on rdma and dpdk a TLS 1.3 handshake per channel that keys the sealing (docs/security.md). The ids name entries of tls_catalog (ternd: --tls-creds defines
  // "tls0", --tls-authz-file "authz0"); a migration with ids the catalog lacks is refused.
  TlsSettings tls;
  std::shared_ptr<const TlsCatalog> tls_catalog;
  // Destination, file-backed 4 KiB guest RAM in postcopy: land pages in the page cache and
  // install them with UFFDIO_CONTINUE (zero-copy) instead of UFFDIO_COPY from a staging page.
  // Off by default: on Linux 6.18 the write through tern's mapping faults and the kernel zeroes
  // each shmem page first, 2.6-3.2 us of CPU per page against 1.6-1.8 us for UFFDIO_COPY into
  // the same memfd (bench/uffd_bench.cc BM_PagePlacement). 2 MiB hugetlbfs pages always use it.
  bool zero_copy_small_pages = false;
  // "__io.github.tern_page-integrity": every page frame (kPage, kZero) on the urgent and bulk channels is
  // preceded by a tag, AES-256-GCM (GMAC) under the channel's session key over the frame's
  // header and bytes, checked before the page is used (engine/page_integrity.h). Needs a
  // peer_key; both sides must set it (the layout negotiates it: a mismatch is refused).
  bool page_integrity = false;
};

// QMP status names: none, setup, active, postcopy-active, device, completed, failed,
// cancelling, cancelled, postcopy-paused (a postcopy link broke: both sides wait for
// recovery), postcopy-recover (a new link is resyncing). kLastStatus is the last value.
enum class MigrationStatus { kNone, kSetup, kActive, kPostcopyActive, kDevice, kCompleted,
                             kFailed, kCancelling, kCancelled, kPostcopyPaused,
                             kPostcopyRecover };
inline constexpr MigrationStatus kLastStatus = MigrationStatus::kPostcopyRecover;
const char* status_name(MigrationStatus s);
bool is_terminal(MigrationStatus s);

// QEMU's MigrationStats fields (bytes unless named otherwise, times in ms).
struct MigrationStats {
  uint64_t transferred = 0;
  uint64_t remaining = 0;
  uint64_t total = 0;
  uint64_t duplicate = 0;         // zero target pages sent as markers
  uint64_t normal = 0;            // target pages sent with data
  uint64_t normal_bytes = 0;
  uint64_t dirty_pages_rate = 0;  // target pages per second, last round
  double mbps = 0;                // throughput of the last interval, megabits per second
  uint64_t dirty_sync_count = 0;
  uint64_t postcopy_requests = 0;
  uint64_t precopy_bytes = 0;
  uint64_t postcopy_bytes = 0;
  uint64_t downtime = 0;
  uint64_t total_time = 0;
  uint64_t setup_time = 0;
  uint64_t expected_downtime = 0;
  // tern extras
  uint64_t urgent_pages = 0;      // host pages sent because a destination thread waited
  uint64_t preemptions = 0;       // huge pages interrupted between chunks for urgent requests (S1)
  uint64_t raised_requests = 0;   // requests served on the bulk channel holding the page (S3)
  uint64_t discarded_pages = 0;   // stale host pages discarded at the switch to postcopy
  uint64_t zero_copy_pages = 0;   // destination: host pages installed from the page cache
                                  // (UFFDIO_CONTINUE, file-backed guest RAM) in postcopy
  // Dirty limit (S4), while the dirty-limit capability throttles the guest: the largest penalty
  // a vCPU sleeps per ring-full round, and the average time to fill a ring (microseconds).
  uint64_t dirty_limit_throttle_time_per_round = 0;
  uint64_t dirty_limit_ring_full_time = 0;
  bool dirty_limit_active = false;  // the capability has turned the limit on
  // Free page hinting (S5), in target pages: reported free by the guest; dirty but free, so
  // taken out of the migration bitmap unsent; hint ranges refused (outside RAM).
  uint64_t free_page_hints = 0;
  uint64_t free_pages_skipped = 0;
  uint64_t free_page_hints_refused = 0;
  bool switchover_forced = false;   // precopy reached max-rounds without converging
  // Postcopy recovery: links broken in postcopy; recoveries that resumed; host pages the
  // destination lacked at the last resync (source).
  uint64_t postcopy_pauses = 0;
  uint64_t postcopy_recoveries = 0;
  uint64_t recovery_missing_pages = 0;
};

struct MigrationInfo {
  MigrationStatus status = MigrationStatus::kNone;
  std::string error;              // set when failed, or why the link broke when postcopy-paused
  std::string transport;          // name of the transport in use
  bool authenticated = false;     // every channel proved it knows the peer key (both ways)
  std::string encryption;         // "TLS 1.3, TLS_AES_256_GCM_SHA384", "" when in clear
  bool page_integrity = false;    // every page frame is checked against its tag (page_integrity)
  MigrationStats stats;
  LatencyHistogram::Snapshot fault_latency;  // destination: fault read -> page placed
};

using StatusCallback = std::function<void(MigrationStatus, const std::string& detail)>;
// Something the user should hear of that is not a status change: ok for news ("waiting again
// for a source"), an error for trouble that was survived (a connection dropped at its hello).
using NoticeCallback = std::function<void(const Status& notice)>;

class DirtyLimiter;

class OutgoingMigration {
 public:
  // `limiter`: the guest's dirty limiter, if its owner has one (the dirty-limit capability then
  // borrows it and gives back the limits it found); otherwise the migration makes its own.
  OutgoingMigration(Guest& guest, MigrationCapabilities caps, MigrationParameters params,
                    DirtyLimiter* limiter = nullptr);
  ~OutgoingMigration();  // cancels and joins if still running

  // Connects to `uri` and starts migrating in the background. Errors in the URI or the
  // transport name are returned here; later failures show in info().
  Status start(const std::string& uri);
  // Switch to postcopy at the next round boundary (needs the postcopy-ram capability).
  Status start_postcopy();
  // Cancels; the source guest keeps running untouched. Refused (ignored) once postcopy has
  // started, since the guest then runs on the destination; in postcopy-paused it gives up the
  // recovery instead: the migration fails (the guest's memory stays split between the hosts).
  void cancel();
  // Postcopy recovery. pause() breaks the link on purpose (QMP migrate-pause): both sides go to
  // postcopy-paused; refused outside postcopy-active / postcopy-recover. resume() (QMP migrate
  // with resume=true) connects to `uri`, where the destination listens after migrate-recover,
  // and resyncs (postcopy-recover), then postcopy goes on; refused unless postcopy-paused.
  Status pause();
  Status resume(const std::string& uri);
  // Ends the migration in any state, postcopy included (ternd is exiting): the destination is
  // told, and a postcopy migration fails (the guest's memory is split between the hosts).
  void shutdown();
  MigrationInfo info() const;
  // Blocks until the migration reaches a terminal status, or the timeout passes.
  MigrationStatus wait(std::chrono::milliseconds timeout = std::chrono::hours(24));
  void on_status(StatusCallback cb);

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

class IncomingMigration {
 public:
  IncomingMigration(GuestFactory factory, MigrationParameters params);
  ~IncomingMigration();

  // Listens on `uri` and accepts migrations in the background until one completes or fails
  // after its guest ran here (postcopy). Returns the URI a source should connect to (wildcard
  // ports resolved). A connection whose handshake fails is dropped (a notice says why) and the
  // listener stays armed; a migration that fails or is cancelled by the source before the
  // guest ran here ends in `failed` / `cancelled` and the listener is armed again: the next
  // source to connect starts a new migration (status back to `setup`).
  Result<std::string> start(const std::string& uri);
  // Cancels (and stops listening). Ignored once postcopy runs the guest here; in
  // postcopy-paused it gives up the recovery: the migration fails and the guest here is lost.
  void cancel();
  // Postcopy recovery. pause(): as OutgoingMigration::pause. recover() (QMP migrate-recover),
  // only in postcopy-paused: listens on `uri` for the source's resume (replacing an earlier
  // recovery listener) and returns the URI to resume to (wildcard port resolved). The guest
  // here keeps running meanwhile; vCPUs that touch a missing page wait for it.
  Status pause();
  Result<std::string> recover(const std::string& uri);
  // Ends everything in any state, postcopy included (the guest here is then lost), telling
  // the source; for a ternd that exits.
  void shutdown();
  MigrationInfo info() const;
  // Blocks until a terminal status (of the current migration), or the timeout passes.
  MigrationStatus wait(std::chrono::milliseconds timeout = std::chrono::hours(24));
  void on_status(StatusCallback cb);
  // Notices from the control thread (dropped connections, re-arming). Set before start().
  void on_notice(NoticeCallback cb);
  // The destination guest once the layout has arrived (nullptr before); owned by this object.
  // A re-armed destination replaces it when the next source's layout comes: from a thread other
  // than a status callback, hold it with shared_guest().
  Guest* guest();
  std::shared_ptr<Guest> shared_guest();

  class Impl;

 private:
  std::unique_ptr<Impl> impl_;
};

}  // namespace tern
