// tern's additions to QEMU's QMP vocabulary, named as QEMU's qmp-spec asks downstreams to
// ("Downstream extension of QMP"): `__RFQDN_` + name, with tern's RFQDN `io.github.tern`
// (docs/cli.md says why). This is the one list of them: ternd, ternctl and the tests take every
// extension name from here. Names QEMU has for the same concept are used as QEMU spells them
// and are not listed. Members of a command that is itself an extension (query-guest's
// arguments and reply) need no prefix: the command's name already places them.
#pragma once

#include <string>
#include <string_view>

#define TERN_QMP_EXTENSION(name) "__io.github.tern_" name

namespace tern::control::ext {

inline constexpr std::string_view kPrefix = TERN_QMP_EXTENSION("");

// Commands.
inline constexpr const char* kQueryGuest = TERN_QMP_EXTENSION("query-guest");
inline constexpr const char* kQueryTransports = TERN_QMP_EXTENSION("query-transports");
inline constexpr const char* kQueryIncoming = TERN_QMP_EXTENSION("query-incoming");

// migrate-incoming's reply member: the URI listened on, port resolved (QEMU replies {}).
inline constexpr const char* kListeningUri = TERN_QMP_EXTENSION("uri");

// Migration capability (S5; QEMU's nearest is virtio-balloon's free-page-hint property).
inline constexpr const char* kFreePageHint = TERN_QMP_EXTENSION("free-page-hint");

// Migration parameters.
inline constexpr const char* kChunkSize = TERN_QMP_EXTENSION("chunk-size");
inline constexpr const char* kWorkers = TERN_QMP_EXTENSION("workers");
inline constexpr const char* kMaxRounds = TERN_QMP_EXTENSION("max-rounds");
// ms a postcopy peer may stay silent (no keepalive) before the link counts as broken.
inline constexpr const char* kPostcopyPeerTimeout = TERN_QMP_EXTENSION("postcopy-peer-timeout");
// ms to connect a migration's channels and finish their handshake (source), or for each
// connection's hello and handshake (destination).
inline constexpr const char* kHandshakeTimeout = TERN_QMP_EXTENSION("handshake-timeout");
// Destination: 1 = 4 KiB file-backed RAM placed zero-copy in postcopy too (2 MiB always is).
inline constexpr const char* kZeroCopySmallPages = TERN_QMP_EXTENSION("zero-copy-small-pages");
// Both sides, false/true (or 0/1), default false: a tag (GMAC under the session key) per page
// frame, checked before the page is used (docs/security.md). Also a query-migrate member: true
// when it is in force.
inline constexpr const char* kPageIntegrity = TERN_QMP_EXTENSION("page-integrity");

// query-migrate members (MigrationInfo).
inline constexpr const char* kTransport = TERN_QMP_EXTENSION("transport");
inline constexpr const char* kSwitchoverForced = TERN_QMP_EXTENSION("switchover-forced");
inline constexpr const char* kPostcopyFaultLatency = TERN_QMP_EXTENSION("postcopy-fault-latency");
inline constexpr const char* kIncomingUri = TERN_QMP_EXTENSION("incoming-uri");
// {"pauses", "recoveries", "missing-pages"} once a postcopy link broke (QEMU has no counters).
// "psk" (every channel authenticated with the pre-shared key, control frames sealed), "tls"
// (TLS 1.3 with x509 on every channel), "tls+psk" (both), or "none" (ternd --insecure).
inline constexpr const char* kChannelSecurity = TERN_QMP_EXTENSION("channel-security");
// How the channels are encrypted ("TLS 1.3, TLS_AES_256_GCM_SHA384"); absent when in clear.
inline constexpr const char* kChannelEncryption = TERN_QMP_EXTENSION("channel-encryption");
inline constexpr const char* kPostcopyRecovery = TERN_QMP_EXTENSION("postcopy-recovery");

// query-migrate "ram" members (MigrationStats).
inline constexpr const char* kUrgentPages = TERN_QMP_EXTENSION("urgent-pages");
inline constexpr const char* kPreemptions = TERN_QMP_EXTENSION("preemptions");
inline constexpr const char* kRaisedRequests = TERN_QMP_EXTENSION("raised-requests");
inline constexpr const char* kDiscardedPages = TERN_QMP_EXTENSION("discarded-pages");
inline constexpr const char* kFreePageHints = TERN_QMP_EXTENSION("free-page-hints");
inline constexpr const char* kFreePagesSkipped = TERN_QMP_EXTENSION("free-pages-skipped");
inline constexpr const char* kFreePageHintsRefused = TERN_QMP_EXTENSION("free-page-hints-refused");
// Destination: host pages installed from the page cache (UFFDIO_CONTINUE) in postcopy.
inline constexpr const char* kZeroCopyPages = TERN_QMP_EXTENSION("zero-copy-pages");

// query-vcpu-dirty-limit member (DirtyLimitInfo).
inline constexpr const char* kPenaltyUs = TERN_QMP_EXTENSION("penalty-us");

// MIGRATION event data member: why a migration failed (QEMU's event has `status` only).
inline constexpr const char* kErrorDesc = TERN_QMP_EXTENSION("error-desc");

// Every name above: qmp_name() looks names up here; tests/control/qmp_names_test checks them.
inline constexpr const char* kAll[] = {
    kQueryGuest,
    kQueryTransports,
    kQueryIncoming,
    kListeningUri,
    kFreePageHint,
    kChunkSize,
    kWorkers,
    kMaxRounds,
    kPostcopyPeerTimeout,
    kHandshakeTimeout,
    kZeroCopySmallPages,
    kPageIntegrity,
    kTransport,
    kSwitchoverForced,
    kPostcopyFaultLatency,
    kIncomingUri,
    kPostcopyRecovery,
    kChannelSecurity,
    kChannelEncryption,
    kUrgentPages,
    kPreemptions,
    kRaisedRequests,
    kDiscardedPages,
    kFreePageHints,
    kFreePagesSkipped,
    kFreePageHintsRefused,
    kZeroCopyPages,
    kPenaltyUs,
    kErrorDesc,
};

// The QMP name for a name given without the prefix ("free-page-hint" -> kFreePageHint), for
// ternctl's friendly names; any other name (QEMU's, or already prefixed) comes back as given.
std::string qmp_name(std::string_view friendly);
// The name without tern's prefix ("__io.github.tern_chunk-size" -> "chunk-size"), for people.
std::string_view friendly_name(std::string_view name);
// The extension that an input name of tern 0.1 became ("x-free-page-hint" -> kFreePageHint,
// "query-guest" -> kQueryGuest), or nullptr: lets errors point an old client to the new name.
const char* renamed_from(std::string_view old_name);
// " (tern's extension is named NEW now)" when `old_name` was renamed, else "".
std::string renamed_hint(std::string_view old_name);

}  // namespace tern::control::ext

#undef TERN_QMP_EXTENSION
