#include "dataplane/toolkit/session_keys.h"

#include <openssl/core_names.h>
#include <openssl/kdf.h>
#include <openssl/params.h>

#include <cstring>
#include <string>

namespace tern::toolkit {
namespace {

// HKDF-SHA256(salt, ikm, info) into out[kSessionKeyBytes].
bool hkdf(const uint8_t* salt, size_t salt_len, const std::vector<uint8_t>& ikm,
          const std::string& label, const HelloPayload& hello, uint8_t* out) {
  std::string info = label;
  info.append(reinterpret_cast<const char*>(&hello), sizeof(hello));
  EVP_KDF* kdf = EVP_KDF_fetch(nullptr, "HKDF", nullptr);
  if (kdf == nullptr) return false;
  EVP_KDF_CTX* ctx = EVP_KDF_CTX_new(kdf);
  EVP_KDF_free(kdf);
  if (ctx == nullptr) return false;
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(ikm.data()),
                                        ikm.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, const_cast<uint8_t*>(salt),
                                        salt_len),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, info.data(), info.size()),
      OSSL_PARAM_construct_end()};
  const bool ok = EVP_KDF_derive(ctx, out, kSessionKeyBytes, params) == 1;
  EVP_KDF_CTX_free(ctx);
  return ok;
}

}  // namespace

Result<ChannelKeys> derive_channel_keys(const PeerKey& key, char role, const HelloPayload& hello,
                                        const uint8_t* nonce_s, const uint8_t* nonce_d) {
  uint8_t salt[64];
  std::memcpy(salt, nonce_s, 32);
  std::memcpy(salt + 32, nonce_d, 32);
  uint8_t s2d[kSessionKeyBytes], d2s[kSessionKeyBytes];
  if (!hkdf(salt, sizeof(salt), key.bytes, "tern-session-v1 s2d", hello, s2d) ||
      !hkdf(salt, sizeof(salt), key.bytes, "tern-session-v1 d2s", hello, d2s))
    return Status(Code::kInternal, "HKDF-SHA256 failed (libcrypto)");
  ChannelKeys k;
  std::memcpy(k.send, role == 'S' ? s2d : d2s, kSessionKeyBytes);
  std::memcpy(k.recv, role == 'S' ? d2s : s2d, kSessionKeyBytes);
  return k;
}

}  // namespace tern::toolkit
