// Postcopy recovery's resync: after a broken link, the destination (the authority on what is
// in place) sends one bitmap of received host pages per block; the source makes every host
// page that is not in it dirty again, and only those, so nothing missing is forgotten and
// nothing in place is sent again. Pure functions over the bitmaps: the control threads call
// them while their workers are stopped. Also the small pieces both sides' recovery shares.
#pragma once

#include <cstdint>
#include <vector>

#include "dataplane/bitmap.h"
#include "dataplane/engine/control_link.h"
#include "dataplane/migration.h"
#include "dataplane/status.h"
#include "dataplane/transport.h"

namespace tern::engine {

// The kReceivedBitmap payload for one block: its bits as little-endian u64 words.
std::vector<uint8_t> encode_received(const AtomicBitmap& received);

// Source: `dirty` (one block's bitmap of host pages to send) becomes exactly the pages that
// `payload` (encode_received of the destination's block) does not hold. Returns how many host
// pages are missing; kProtocol when the payload's size does not match the block.
Result<uint64_t> apply_received(const uint8_t* payload, size_t size, AtomicBitmap& dirty);

// Source, resuming: takes the destination's answer to kResume one message at a time: one
// kReceivedBitmap per block (`round` = block index; applied to that block of `dirty`), then
// kResumeAck. A kError, another type, a block out of range or sent twice, a bitmap of the wrong
// size, or kResumeAck before every block: an error (kProtocol). Control thread only.
class ResyncIntake {
 public:
  explicit ResyncIntake(MigrationBitmap& dirty) : dirty_(dirty), seen_(dirty.blocks(), false) {}
  // True once kResumeAck completed the resync.
  Result<bool> take(const ControlMessage& m);
  // Host pages the destination does not hold, over the blocks taken so far.
  uint64_t missing() const { return missing_; }

 private:
  MigrationBitmap& dirty_;
  std::vector<bool> seen_;
  uint64_t missing_ = 0;
};

// Destination: the first message on a resumed link must be kResume carrying `token`.
Status check_resume(const ControlMessage& m, uint64_t token);

// The 8-byte recovery token of kPostcopyAck / kResume; kProtocol for another size.
std::vector<uint8_t> encode_token(uint64_t token);
Result<uint64_t> decode_token(const std::vector<uint8_t>& payload);
// A random 64-bit value (session ids, recovery tokens).
uint64_t random_u64();

// migrate-pause: ok in postcopy-active / postcopy-recover, else an error naming the status.
Status can_pause(MigrationStatus s);
// A failure that breaks a link (an I/O error or a timeout: EOF, reset, a silent peer) rather
// than refuses it (a protocol error, a peer's kError).
bool breaks_link(const Status& s);
// The link is broken rather than refused: the control link or a channel failed with an I/O
// error or a timeout (EOF, reset, a silent peer), not a protocol error. Workers stopped.
bool link_broken(const ControlLink* link, const ChannelSet& channels);

}  // namespace tern::engine
