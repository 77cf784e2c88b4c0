// Sealed control frames (dataplane/engine/frame_seal.h): what sealing and opening one control
// message costs, by payload size (an ack, a 4 KiB layout, a 1 MiB device state), and the two
// AEADs it could use (AES-256-GCM, chosen; ChaCha20-Poly1305) on the same bytes, for
// docs/security.md. Bytes per second are the message's payload.
// BM_PageTag*: the candidates for the page integrity tag over one frame's bytes (a 4 KiB page,
// a 64 KiB chunk): GMAC as MarkerSealer makes it (AES-256-GCM, key schedule once, the page as
// associated data; chosen), HMAC-SHA256 and keyed BLAKE2b-256 (OpenSSL EVP_MAC), each with the
// context made once and reused as the data path would.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <vector>

#include "dataplane/engine/frame_seal.h"
#include "dataplane/engine/marker_seal.h"

#include <openssl/core_names.h>
#include <openssl/params.h>

namespace {

using namespace tern;

void BM_ControlSealOpen(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  uint8_t key[kSessionKeyBytes] = {7};
  engine::FrameSealer sealer(key);
  engine::FrameOpener opener(key);
  std::vector<uint8_t> payload(n, 0x5a), sealed, opened;
  const FrameHeader inner = make_header(FrameType::kControl, 0, 0, static_cast<uint32_t>(n),
                                        static_cast<uint32_t>(ControlType::kDeviceState));
  for (auto _ : state) {
    FrameHeader outer;
    if (!sealer.seal(inner, payload.data(), n, &outer, &sealed).is_ok()) state.SkipWithError("seal");
    auto r = opener.open(outer, sealed.data(), sealed.size(), &opened);
    if (!r) state.SkipWithError("open");
    benchmark::DoNotOptimize(opened.data());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
BENCHMARK(BM_ControlSealOpen)->Arg(0)->Arg(4096)->Arg(1 << 20);

// One AEAD seal of `n` bytes with a fresh context, as FrameSealer does.
void aead_seal(benchmark::State& state, const EVP_CIPHER* cipher) {
  const size_t n = static_cast<size_t>(state.range(0));
  uint8_t key[32] = {7}, nonce[12] = {1}, tag[16];
  std::vector<uint8_t> in(n, 0x5a), out(n);
  for (auto _ : state) {
    EVP_CIPHER_CTX* ctx = EVP_CIPHER_CTX_new();
    int len = 0;
    EVP_EncryptInit_ex(ctx, cipher, nullptr, key, nonce);
    EVP_EncryptUpdate(ctx, out.data(), &len, in.data(), static_cast<int>(n));
    EVP_EncryptFinal_ex(ctx, out.data() + len, &len);
    EVP_CIPHER_CTX_ctrl(ctx, EVP_CTRL_AEAD_GET_TAG, 16, tag);
    EVP_CIPHER_CTX_free(ctx);
    benchmark::DoNotOptimize(tag);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
void BM_AeadChaCha20Poly1305(benchmark::State& state) { aead_seal(state, EVP_chacha20_poly1305()); }
void BM_AeadAes256Gcm(benchmark::State& state) { aead_seal(state, EVP_aes_256_gcm()); }
BENCHMARK(BM_AeadChaCha20Poly1305)->Arg(4096)->Arg(1 << 20);
BENCHMARK(BM_AeadAes256Gcm)->Arg(4096)->Arg(1 << 20);

void BM_PageTagGmac(benchmark::State& state) {
  const size_t n = static_cast<size_t>(state.range(0));
  uint8_t key[kSessionKeyBytes] = {7}, out[engine::kSealedMarkerBytes];
  std::vector<uint8_t> page(n, 0x5a);
  engine::MarkerSealer sealer(key);
  const FrameHeader h = make_header(FrameType::kPage, 0, 0, static_cast<uint32_t>(n), 0, 1, 2);
  for (auto _ : state) {
    FrameHeader outer;
    if (!sealer.seal(h, page.data(), n, &outer, out)) state.SkipWithError("seal");
    benchmark::DoNotOptimize(out);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}

// An EVP_MAC (HMAC with SHA-256, or BLAKE2BMAC) over the header and the page, context reused.
void evp_mac_tag(benchmark::State& state, const char* mac_name, const char* digest) {
  const size_t n = static_cast<size_t>(state.range(0));
  uint8_t key[32] = {7}, tag[64];
  std::vector<uint8_t> page(n, 0x5a);
  const FrameHeader h = make_header(FrameType::kPage, 0, 0, static_cast<uint32_t>(n), 0, 1, 2);
  EVP_MAC* mac = EVP_MAC_fetch(nullptr, mac_name, nullptr);
  if (mac == nullptr) {
    state.SkipWithError("MAC not available");
    return;
  }
  EVP_MAC_CTX* ctx = EVP_MAC_CTX_new(mac);
  OSSL_PARAM params[2] = {OSSL_PARAM_construct_end(), OSSL_PARAM_construct_end()};
  if (digest) params[0] = OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST,
                                                           const_cast<char*>(digest), 0);
  for (auto _ : state) {
    size_t len = 0;
    if (EVP_MAC_init(ctx, key, sizeof(key), params) != 1 ||
        EVP_MAC_update(ctx, reinterpret_cast<const uint8_t*>(&h), sizeof(h)) != 1 ||
        EVP_MAC_update(ctx, page.data(), n) != 1 || EVP_MAC_final(ctx, tag, &len, sizeof(tag)) != 1)
      state.SkipWithError("mac");
    benchmark::DoNotOptimize(tag);
  }
  EVP_MAC_CTX_free(ctx);
  EVP_MAC_free(mac);
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations() * n));
}
void BM_PageTagHmacSha256(benchmark::State& state) { evp_mac_tag(state, "HMAC", "SHA256"); }
void BM_PageTagBlake2b(benchmark::State& state) { evp_mac_tag(state, "BLAKE2BMAC", nullptr); }
BENCHMARK(BM_PageTagGmac)->Arg(0)->Arg(4096)->Arg(65536);
BENCHMARK(BM_PageTagHmacSha256)->Arg(4096)->Arg(65536);
BENCHMARK(BM_PageTagBlake2b)->Arg(4096)->Arg(65536);

}  // namespace
