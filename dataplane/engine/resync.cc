#include "dataplane/engine/resync.h"

#include <cstring>
#include <random>
#include <string>

namespace tern::engine {

static size_t words_of(size_t bits) { return (bits + 63) / 64; }

std::vector<uint8_t> encode_received(const AtomicBitmap& received) {
  std::vector<uint8_t> out(words_of(received.size()) * 8, 0);
  for (size_t i = received.find_next_set(0); i < received.size();
       i = received.find_next_set(i + 1))
    out[i / 8] |= static_cast<uint8_t>(1u << (i % 8));  // bit i of the LE words
  return out;
}

Result<uint64_t> apply_received(const uint8_t* payload, size_t size, AtomicBitmap& dirty) {
  if (size != words_of(dirty.size()) * 8)
    return Status(Code::kProtocol, "received bitmap of " + std::to_string(size) +
                                       " bytes for a block of " + std::to_string(dirty.size()) +
                                       " host pages (expected " +
                                       std::to_string(words_of(dirty.size()) * 8) + ")");
  uint64_t missing = 0;
  for (size_t i = 0; i < dirty.size(); ++i) {
    if (payload[i / 8] & (1u << (i % 8))) {
      dirty.clear(i);
    } else {
      dirty.set(i);
      ++missing;
    }
  }
  return missing;
}

std::vector<uint8_t> encode_token(uint64_t token) {
  std::vector<uint8_t> out(8);
  std::memcpy(out.data(), &token, 8);
  return out;
}

Result<uint64_t> decode_token(const std::vector<uint8_t>& payload) {
  if (payload.size() != 8)
    return Status(Code::kProtocol, "recovery token of " + std::to_string(payload.size()) +
                                       " bytes (expected 8)");
  uint64_t token;
  std::memcpy(&token, payload.data(), 8);
  return token;
}

uint64_t random_u64() {
  std::random_device rd;
  return (uint64_t{rd()} << 32) | rd();
}

Status can_pause(MigrationStatus s) {
  if (s == MigrationStatus::kPostcopyActive || s == MigrationStatus::kPostcopyRecover)
    return Status::ok();
  return Status(Code::kInvalidArgument,
                std::string("migrate-pause works in postcopy only (status ") + status_name(s) + ")");
}

bool breaks_link(const Status& s) { return s.code() == Code::kIo || s.code() == Code::kTimeout; }

bool link_broken(const ControlLink* link, const ChannelSet& channels) {
  if (link && breaks_link(link->error())) return true;
  for (const auto& c : channels)
    if (breaks_link(c->error())) return true;
  return false;
}

}  // namespace tern::engine
