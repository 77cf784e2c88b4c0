#include "dataplane/engine/frame_seal.h"

#include <openssl/evp.h>

#include <cstring>
#include <memory>
#include <string>

namespace tern::engine {
namespace {

using CipherCtx = std::unique_ptr<EVP_CIPHER_CTX, decltype(&EVP_CIPHER_CTX_free)>;

Status denied(const std::string& why) {
  return Status(Code::kDenied, "control frame failed authentication: " + why);
}

}  // namespace

void seal_nonce(uint64_t seq, uint8_t nonce[12]) {
  std::memset(nonce, 0, 4);
  for (int i = 0; i < 8; ++i) nonce[4 + i] = static_cast<uint8_t>(seq >> (8 * i));
}

FrameSealer::FrameSealer(const uint8_t* key) { std::memcpy(key_, key, sizeof(key_)); }

Status FrameSealer::seal(FrameHeader inner, const uint8_t* payload, size_t n,
                         FrameHeader* outer, std::vector<uint8_t>* sealed) {
  if (n > kMaxControlPayload - kSealOverhead)
    return Status(Code::kInvalidArgument, "a control message of " + std::to_string(n) +
                                              " bytes is too large to seal");
  const auto total = static_cast<uint32_t>(n + kSealOverhead);
  *outer = make_header(FrameType::kControl, 0, 0, total,
                       static_cast<uint32_t>(ControlType::kSealed), 0, inner.channel);
  sealed->resize(total);
  std::memcpy(sealed->data(), &inner, sizeof(inner));
  if (n) std::memcpy(sealed->data() + sizeof(inner), payload, n);
  uint8_t nonce[12];
  seal_nonce(seq_, nonce);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  const int body = static_cast<int>(sizeof(inner) + n);
  if (!ctx || EVP_EncryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) != 1 ||
      EVP_EncryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(outer),
                        sizeof(*outer)) != 1 ||
      EVP_EncryptUpdate(ctx.get(), sealed->data(), &len, sealed->data(), body) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), sealed->data() + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_GET_TAG, kSealTagBytes,
                          sealed->data() + body) != 1)
    return Status(Code::kInternal, "AES-256-GCM sealing failed (libcrypto)");
  ++seq_;
  return Status::ok();
}

FrameOpener::FrameOpener(const uint8_t* key) { std::memcpy(key_, key, sizeof(key_)); }

Result<FrameHeader> FrameOpener::open(const FrameHeader& outer, const uint8_t* data, size_t n,
                                      std::vector<uint8_t>* payload) {
  if (static_cast<FrameType>(outer.type) != FrameType::kControl ||
      outer.flags != static_cast<uint32_t>(ControlType::kSealed))
    return denied("an unsealed frame (type " + std::to_string(outer.type) + ", flags " +
                  std::to_string(outer.flags) + ") on a channel with session keys");
  if (data == nullptr || n != outer.length || n < kSealOverhead)
    return denied("a sealed frame of " + std::to_string(n) + " bytes (at least " +
                  std::to_string(kSealOverhead) + ")");
  const int body = static_cast<int>(n - kSealTagBytes);
  std::vector<uint8_t> plain(static_cast<size_t>(body));
  uint8_t nonce[12];
  seal_nonce(seq_, nonce);
  CipherCtx ctx(EVP_CIPHER_CTX_new(), EVP_CIPHER_CTX_free);
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex(ctx.get(), EVP_aes_256_gcm(), nullptr, key_, nonce) != 1 ||
      EVP_DecryptUpdate(ctx.get(), nullptr, &len, reinterpret_cast<const uint8_t*>(&outer),
                        sizeof(outer)) != 1 ||
      EVP_DecryptUpdate(ctx.get(), plain.data(), &len, data, body) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_AEAD_SET_TAG, kSealTagBytes,
                          const_cast<uint8_t*>(data + body)) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), plain.data() + len, &len) != 1)
    return denied("frame " + std::to_string(seq_) +
                  " of the peer does not open with this session's key (tampered, replayed, "
                  "reordered or dropped on the way)");
  FrameHeader inner;
  std::memcpy(&inner, plain.data(), sizeof(inner));
  if (Status s = check_header(inner); !s.is_ok()) return denied("inner frame: " + s.message());
  if (static_cast<FrameType>(inner.type) != FrameType::kControl ||
      inner.length != n - kSealOverhead || inner.channel != outer.channel)
    return denied("the inner frame does not match its seal");
  payload->assign(plain.begin() + sizeof(inner), plain.end());
  ++seq_;
  return inner;
}

}  // namespace tern::engine
