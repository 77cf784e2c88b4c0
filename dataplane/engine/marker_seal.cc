#include "dataplane/engine/marker_seal.h"

#include <openssl/evp.h>

#include <cstring>

namespace tern::engine {
namespace {

constexpr int kInner = static_cast<int>(sizeof(FrameHeader));

FrameHeader outer_of(uint32_t channel, bool tag) {
  return make_header(FrameType::kControl, tag ? kMarkerTagsNext : 0, 0, kSealedMarkerBytes,
                     static_cast<uint32_t>(ControlType::kSealed), 0, channel);
}

// The key schedule once; each frame then sets only its nonce.
EVP_CIPHER_CTX* keyed_context(const uint8_t* key, bool encrypt) {
  EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
  if (ctx == nullptr) return nullptr;
  const int ok = encrypt ? EVP_EncryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr)
                         : EVP_DecryptInit_ex(ctx, EVP_aes_256_gcm(), nullptr, key, nullptr);
  if (ok != 1) {
    EVP_CIPHER_CTX_free(ctx);
    return nullptr;
  }
  return ctx;
}

}  // namespace

MarkerSealer::MarkerSealer(const uint8_t* key) : ctx_(keyed_context(key, true)) {}
MarkerSealer::~MarkerSealer() { EVP_CIPHER_CTX_free(ctx_); }

bool MarkerSealer::seal(FrameHeader inner, const uint8_t* covered, size_t covered_len,
                        FrameHeader* outer, uint8_t* out) {
  if (ctx_ == nullptr) return false;
  *outer = outer_of(inner.channel, tags_page(inner));
  uint8_t nonce[12];
  seal_nonce(seq_, nonce);
  int len = 0;
  if (EVP_EncryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
      EVP_EncryptUpdate(ctx_, nullptr, &len, reinterpret_cast<const uint8_t*>(outer),
                        sizeof(*outer)) != 1 ||
      (covered_len &&
       EVP_EncryptUpdate(ctx_, nullptr, &len, covered, static_cast<int>(covered_len)) != 1) ||
      EVP_EncryptUpdate(ctx_, out, &len, reinterpret_cast<const uint8_t*>(&inner), kInner) != 1 ||
      EVP_EncryptFinal_ex(ctx_, out + len, &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_GET_TAG, kSealTagBytes, out + kInner) != 1)
    return false;
  ++seq_;
  return true;
}

MarkerOpener::MarkerOpener(const uint8_t* key) : ctx_(keyed_context(key, false)) {}
MarkerOpener::~MarkerOpener() { EVP_CIPHER_CTX_free(ctx_); }

MarkerOpener::Refusal MarkerOpener::open(const FrameHeader& outer, const uint8_t* data,
                                         const uint8_t* covered, size_t covered_len,
                                         FrameHeader* inner, bool skip_on_refusal) {
  Refusal why = Refusal::kNone;
  if (!is_sealed_frame(outer)) {
    why = Refusal::kNotSealed;
  } else if (const FrameHeader expected = outer_of(outer.channel, outer.block != 0);
             data == nullptr || std::memcmp(&outer, &expected, sizeof(outer)) != 0) {
    why = Refusal::kBadLength;
  } else {
    uint8_t nonce[12];
    seal_nonce(seq_, nonce);
    uint8_t tag[kSealTagBytes];
    std::memcpy(tag, data + kInner, sizeof(tag));
    int len = 0;
    if (ctx_ == nullptr || EVP_DecryptInit_ex(ctx_, nullptr, nullptr, nullptr, nonce) != 1 ||
        EVP_DecryptUpdate(ctx_, nullptr, &len, reinterpret_cast<const uint8_t*>(&outer),
                          sizeof(outer)) != 1 ||
        (covered_len &&
         EVP_DecryptUpdate(ctx_, nullptr, &len, covered, static_cast<int>(covered_len)) != 1) ||
        EVP_DecryptUpdate(ctx_, reinterpret_cast<uint8_t*>(inner), &len, data, kInner) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx_, EVP_CTRL_AEAD_SET_TAG, kSealTagBytes, tag) != 1 ||
        EVP_DecryptFinal_ex(ctx_, reinterpret_cast<uint8_t*>(inner) + len, &len) != 1) {
      why = Refusal::kDoesNotOpen;
    } else if (!check_header(*inner).is_ok() || inner->channel != outer.channel ||
               tags_page(*inner) != (outer.block == kMarkerTagsNext) ||
               static_cast<FrameType>(inner->type) == FrameType::kControl ||
               static_cast<FrameType>(inner->type) == FrameType::kHello) {
      why = Refusal::kBadInner;
    }
  }
  if (why == Refusal::kNone || skip_on_refusal) ++seq_;
  return why;
}

std::string MarkerOpener::describe(const char* what, Refusal why, uint64_t seq,
                                   uint32_t channel) {
  std::string text = std::string(what) + " failed authentication on channel " +
                     std::to_string(channel) + ": ";
  switch (why) {
    case Refusal::kNotSealed:
      return text + "an unsealed frame on a channel with session keys";
    case Refusal::kBadLength:
      return text + "a sealed frame that is not a marker (its outer header or length)";
    case Refusal::kDoesNotOpen:
      return text + "frame " + std::to_string(seq) +
             " of the peer does not open with this session's key (tampered, replayed, "
             "reordered or dropped on the way)";
    case Refusal::kBadInner:
      return text + "the inner frame does not match its seal";
    case Refusal::kNone:
      break;
  }
  return text + "no refusal";
}

}  // namespace tern::engine
