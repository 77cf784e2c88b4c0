// The saved state of a guest (Guest::save_state / load_state) as one framed blob: the part the
// thread guest and the KVM guest share. Each guest writes its own fields between header and
// checksum and reads them back with the same types in the same order.
//
// Blob, little-endian (the hosts' order):
//   u64 magic | u32 version | u32 vCPUs | u32 spec length | spec (WorkloadSpec::to_string form)
//   | the guest's fields | u64 FNV-1a of everything before
//
// The blob comes from a peer (the source): StateReader checks every length before it reads, so a
// truncated, corrupt or hostile blob gives a kProtocol error that names the problem, never an
// over-read. Errors read "<format name>: <what is wrong>".
//
// Threads: plain values; one thread per writer or reader.
#pragma once

#include <cstdint>
#include <cstring>
#include <span>
#include <string>
#include <type_traits>
#include <vector>

#include "dataplane/status.h"
#include "vm/workload.h"

namespace tern {

// What distinguishes one guest's blobs from another's.
struct StateFormat {
  uint64_t magic;
  uint32_t version;
  const char* name;  // "thread guest state": the prefix of every error
};

// FNV-1a over `bytes` (the blob's trailing checksum).
uint64_t state_checksum(std::span<const uint8_t> bytes);

// Builds a blob: the header at construction, fields with put(), the checksum at finish().
class StateWriter {
 public:
  StateWriter(const StateFormat& format, uint32_t vcpus, const WorkloadSpec& spec);

  // Appends `v`'s bytes as they are in memory.
  template <typename T>
  void put(const T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "state fields are plain bytes");
    uint8_t b[sizeof(T)];
    std::memcpy(b, &v, sizeof(T));
    out_.insert(out_.end(), b, b + sizeof(T));
  }
  // Appends the checksum and hands over the blob.
  std::vector<uint8_t> finish() &&;

 private:
  std::vector<uint8_t> out_;
};

// Reads a blob: open() checks the frame and the header, get() reads the guest's fields in order.
// The reader points into the blob, which must outlive it.
class StateReader {
 public:
  // Checks, in this order: not empty, long enough for a header, magic, version, checksum, spec
  // length within the blob, spec parses, spec and header agree on the vCPU count.
  static Result<StateReader> open(const StateFormat& format, std::span<const uint8_t> blob);

  const WorkloadSpec& spec() const { return spec_; }
  uint32_t vcpus() const { return vcpus_; }
  // Bytes of guest fields not read yet.
  size_t left() const { return left_; }

  // Reads the next sizeof(T) bytes into `v`; false (and `v` untouched) when fewer are left.
  template <typename T>
  [[nodiscard]] bool get(T& v) {
    static_assert(std::is_trivially_copyable_v<T>, "state fields are plain bytes");
    if (left_ < sizeof(T)) return false;
    std::memcpy(&v, p_, sizeof(T));
    p_ += sizeof(T);
    left_ -= sizeof(T);
    return true;
  }

  // kProtocol "<format name>: <why>".
  Status error(const std::string& why) const;
  // Ok once every field byte was read; an error naming the trailing bytes otherwise.
  Status finish() const;

 private:
  StateReader(const StateFormat& format, const uint8_t* p, size_t left)
      : format_(format), p_(p), left_(left) {}

  StateFormat format_;
  const uint8_t* p_;
  size_t left_;
  uint32_t vcpus_ = 0;
  WorkloadSpec spec_;
};

}  // namespace tern
