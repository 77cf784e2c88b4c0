// Test support: a pre-shared key made of one repeated byte, so tests can pair the same key or
// pick a different one ('k' vs 'w') without files.
#pragma once

#include <memory>
#include <string>

#include "dataplane/peer_key.h"

namespace tern::testing_support {

inline std::shared_ptr<const PeerKey> test_key(char fill) {
  auto k = std::make_shared<PeerKey>();
  k->bytes.assign(32, static_cast<uint8_t>(fill));
  k->origin = std::string("test key ") + fill;
  return k;
}

}  // namespace tern::testing_support
