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

Result<bool> ResyncIntake::take(const ControlMessage& m) {
  if (m.type == ControlType::kError)
    return Status(Code::kProtocol, "destination refused the resume: " + m.text());
  if (m.type == ControlType::kResumeAck) {
    for (size_t b = 0; b < seen_.size(); ++b)
      if (!seen_[b])
        return Status(Code::kProtocol, "the destination sent no received bitmap for block " +
                                           std::to_string(b));
    return true;
  }
  if (m.type != ControlType::kReceivedBitmap || m.round >= seen_.size())
    return Status(Code::kProtocol, "unexpected control message " +
                                       std::to_string(static_cast<uint32_t>(m.type)) +
                                       " (round " + std::to_string(m.round) + ") while resuming");
  if (seen_[m.round])
    return Status(Code::kProtocol,
                  "the destination sent block " + std::to_string(m.round) + "'s bitmap twice");
  auto n = apply_received(m.payload.data(), m.payload.size(), dirty_.block(m.round));
  if (!n) return n.status();
  missing_ += *n;
  seen_[m.round] = true;
  return false;
}

Status check_resume(const ControlMessage& m, uint64_t token) {
  if (m.type != ControlType::kResume)
    return Status(Code::kProtocol, "a source on the recovery listener sent control message " +
                                       std::to_string(static_cast<uint32_t>(m.type)) +
                                       " instead of resume");
  auto t = decode_token(m.payload);
  if (!t) return t.status();
  if (*t != token)
    return Status(Code::kProtocol, "a source tried to resume another migration (wrong token)");
  return Status::ok();
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
