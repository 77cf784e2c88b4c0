#include "vm/state_codec.h"

namespace tern {
namespace {

// magic, version, vCPUs, spec length; then the checksum.
constexpr size_t kHeaderBytes = 8 + 4 + 4 + 4;
constexpr size_t kChecksumBytes = 8;

Status state_error(const StateFormat& f, const std::string& why) {
  return Status(Code::kProtocol, std::string(f.name) + ": " + why);
}

}  // namespace

uint64_t state_checksum(std::span<const uint8_t> bytes) {
  uint64_t h = 0xcbf29ce484222325;
  for (uint8_t b : bytes) h = (h ^ b) * 0x100000001b3;
  return h;
}

StateWriter::StateWriter(const StateFormat& format, uint32_t vcpus, const WorkloadSpec& spec) {
  const std::string text = spec.to_string();
  put<uint64_t>(format.magic);
  put<uint32_t>(format.version);
  put<uint32_t>(vcpus);
  put<uint32_t>(static_cast<uint32_t>(text.size()));
  out_.insert(out_.end(), text.begin(), text.end());
}

std::vector<uint8_t> StateWriter::finish() && {
  put<uint64_t>(state_checksum(out_));
  return std::move(out_);
}

Result<StateReader> StateReader::open(const StateFormat& format, std::span<const uint8_t> blob) {
  if (blob.empty())
    return state_error(format, "empty (was the source guest paused when it was saved?)");
  if (blob.size() < kHeaderBytes + kChecksumBytes)
    return state_error(format, std::to_string(blob.size()) + " bytes is too short");
  const std::span<const uint8_t> body = blob.first(blob.size() - kChecksumBytes);
  StateReader r(format, body.data(), body.size());
  uint64_t magic = 0, sum = 0;
  uint32_t version = 0, spec_len = 0;
  std::memcpy(&sum, blob.data() + body.size(), kChecksumBytes);
  (void)r.get(magic);  // the size check above covers the header
  if (magic != format.magic)
    return state_error(format, "bad magic (not a " + std::string(format.name) + ")");
  (void)r.get(version);
  if (version != format.version)
    return state_error(format, "version " + std::to_string(version) +
                                   ", this build reads version " + std::to_string(format.version));
  if (sum != state_checksum(body)) return state_error(format, "checksum mismatch (corrupt)");
  (void)r.get(r.vcpus_);
  (void)r.get(spec_len);
  if (spec_len > r.left_) return state_error(format, "truncated workload spec");
  auto spec = parse_workload(std::string_view(reinterpret_cast<const char*>(r.p_), spec_len));
  r.p_ += spec_len;
  r.left_ -= spec_len;
  if (!spec) return state_error(format, "bad workload spec: " + spec.status().message());
  if (spec->vcpus != r.vcpus_)
    return state_error(format, "spec has " + std::to_string(spec->vcpus) + " vCPUs, state has " +
                                   std::to_string(r.vcpus_));
  r.spec_ = *spec;
  return r;
}

Status StateReader::error(const std::string& why) const { return state_error(format_, why); }

Status StateReader::finish() const {
  if (left_ == 0) return Status::ok();
  return error(std::to_string(left_) + " trailing bytes");
}

}  // namespace tern
