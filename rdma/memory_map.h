// Memory that pages are sent from without a copy (source), or that the peer may write pages
// straight into (destination, precopy without postcopy armed: rdma_channel.h): ranges announced
// by Transport::register_memory, registered with the device on demand, one chunk (64 MiB) at a
// time, the first time a send (or, on a destination, a received frame) touches the chunk. So setup pins nothing and the cost is spread over
// the migration, only for memory that is actually sent. A range or chunk that cannot be
// registered is not an error: the channel then copies into its registered tx area.
//
// Threads: add() runs on the transport's control thread before the workers that look up start
// (the engine registers guest RAM in setup, then starts its workers). lookup() may run on any
// worker: a chunk's key is published with release/acquire, registrations are serialised.
#pragma once

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <vector>

#include "dataplane/status.h"
#include "rdma/verbs_shim.h"

namespace tern::rdma {

class MemoryMap {
 public:
  using Registrar = std::function<Result<Region>(void* addr, size_t len)>;
  static constexpr size_t kChunk = 64u << 20;

  MemoryMap() = default;
  ~MemoryMap();  // deregisters every registered chunk
  MemoryMap(const MemoryMap&) = delete;
  MemoryMap& operator=(const MemoryMap&) = delete;

  // [addr, addr + len) may be registered with `reg`, in kChunk pieces from addr;
  // `remote_write`: `reg` grants the peer write access (a destination's guest RAM).
  void add(void* addr, size_t len, Registrar reg, bool remote_write = false);
  // The registered chunk holding all of [addr, addr + len), registering the chunk on its first
  // use; false when the bytes lie outside every range or registration failed.
  struct Registered {
    const uint8_t* base = nullptr;
    size_t length = 0;
    uint32_t lkey = 0, rkey = 0;
  };
  bool lookup(const void* addr, size_t len, Registered* out);
  bool lookup(const void* addr, size_t len, uint32_t* lkey) {
    Registered r;
    if (!lookup(addr, len, &r)) return false;
    *lkey = r.lkey;
    return true;
  }
  // Some range was added for remote write (a destination without postcopy armed), and the
  // map was not released since.
  bool remote_writable() const { return remote_write_.load(std::memory_order_acquire); }
  // Deregisters every registered chunk; later lookups fail (safe against concurrent lookups).
  void release();
  // Chunks registered so far (tests, stats).
  size_t registered_chunks() const;

 private:
  struct Chunk {
    std::atomic<int> state{0};  // 0 not yet, 1 registered, -1 failed
    Region region;              // valid once state == 1 (release/acquire)
  };
  struct Range {
    uintptr_t begin = 0, end = 0;
    Registrar reg;
    std::unique_ptr<Chunk[]> chunks;
    size_t count = 0;
  };
  bool register_chunk(Range& r, size_t i);

  std::vector<Range> ranges_;  // sorted by begin
  std::mutex mu_;              // serialises registrations
  std::atomic<bool> remote_write_{false};
};

}  // namespace tern::rdma
