#include "dataplane/peer_key.h"

#include <sys/stat.h>

#include <cctype>
#include <fstream>
#include <sstream>

namespace tern {

Result<PeerKey> parse_peer_key(const std::string& text, const std::string& origin) {
  std::istringstream in(text);
  std::string line;
  while (std::getline(in, line)) {
    while (!line.empty() && std::isspace(static_cast<unsigned char>(line.back()))) line.pop_back();
    if (!line.empty()) break;
  }
  const auto colon = line.rfind(':');
  const std::string hex = colon == std::string::npos ? line : line.substr(colon + 1);
  PeerKey k;
  k.origin = origin;
  if (hex.size() % 2 != 0)
    return Status(Code::kInvalidArgument, "key " + origin + ": an odd number of hex digits");
  for (size_t i = 0; i < hex.size(); i += 2) {
    if (!std::isxdigit(static_cast<unsigned char>(hex[i])) ||
        !std::isxdigit(static_cast<unsigned char>(hex[i + 1])))
      return Status(Code::kInvalidArgument,
                    "key " + origin + ": '" + hex.substr(i, 2) + "' is not a hex byte");
    k.bytes.push_back(static_cast<uint8_t>(std::stoul(hex.substr(i, 2), nullptr, 16)));
  }
  if (k.bytes.size() < kMinPeerKeyBytes)
    return Status(Code::kInvalidArgument,
                  "key " + origin + ": " + std::to_string(k.bytes.size()) +
                      " bytes, at least " + std::to_string(kMinPeerKeyBytes) +
                      " needed (make one with: openssl rand -hex 32)");
  return k;
}

Result<PeerKey> load_peer_key(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return errno_status("key file " + path);
  if (st.st_mode & (S_IRWXG | S_IRWXO))
    return Status(Code::kInvalidArgument, "key file " + path +
                                              " may be read by others than its owner "
                                              "(chmod 600 it)");
  std::ifstream f(path);
  std::stringstream text;
  text << f.rdbuf();
  if (!f) return Status(Code::kIo, "key file " + path + ": cannot read it");
  return parse_peer_key(text.str(), path);
}

}  // namespace tern
