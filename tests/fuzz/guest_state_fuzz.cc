// libFuzzer target: the guest state loader, the blob a source sends at switchover
// (vm/state_codec.h, read by ThreadGuest::load_state on the destination). Input: one flag byte
// (bit 0: replace the blob's last 8 bytes by the right checksum, so mutations get past it as a
// hostile peer's would), then the blob. The guest is a fresh destination thread guest of one
// 1 MiB block of 4 KiB pages (create_incoming). Errors must be kProtocol/kInvalidArgument with
// a message; a blob that loads must save again, and what it saves must load and save the same.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "vm/state_codec.h"
#include "vm/thread_guest.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace tern;
  if (size < 1) return 0;
  const bool fix_checksum = data[0] & 1;
  std::vector<uint8_t> blob(data + 1, data + size);
  if (fix_checksum && blob.size() >= 8) {
    uint64_t sum = state_checksum(std::span<const uint8_t>(blob.data(), blob.size() - 8));
    std::memcpy(blob.data() + blob.size() - 8, &sum, 8);
  }
  Layout layout;
  layout.blocks.push_back({"ram", 1u << 20, 4096});
  auto made = ThreadGuest::create_incoming(layout);
  if (!made) std::abort();
  std::unique_ptr<ThreadGuest> g = std::move(made).value();
  Status s = g->load_state(blob);
  if (!s.is_ok()) {
    if (s.message().empty()) std::abort();
    if (s.code() != Code::kProtocol && s.code() != Code::kInvalidArgument) std::abort();
    return 0;
  }
  if (g->vcpus() == 0) std::abort();
  std::vector<uint8_t> saved = g->save_state();
  if (saved.empty()) std::abort();
  auto again = ThreadGuest::create_incoming(layout);
  if (!again) std::abort();
  if (!(*again)->load_state(saved).is_ok()) std::abort();
  if ((*again)->save_state() != saved) std::abort();
  return 0;
}
