// The pre-shared key of a migration: every channel proves it knows it before anything it sends
// is used (dataplane/toolkit/channel_auth.h; docs/security.md).
//
// Threads: immutable once loaded; shared read-only by transports (shared_ptr<const PeerKey>).
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "dataplane/status.h"

namespace tern {

inline constexpr size_t kMinPeerKeyBytes = 16;

struct PeerKey {
  std::vector<uint8_t> bytes;  // at least kMinPeerKeyBytes
  std::string origin;          // where it came from ("/etc/tern/keys.psk"), for messages
};

// Parses a key file's text: hex digits, optionally after "NAME:" (QEMU's tls-creds-psk
// keys.psk line format); only the first non-empty line counts. Errors name the problem.
Result<PeerKey> parse_peer_key(const std::string& text, const std::string& origin);
// Reads and parses the key file at `path` (refused if others than its owner may read it).
Result<PeerKey> load_peer_key(const std::string& path);

}  // namespace tern
