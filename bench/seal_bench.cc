// Sealed control frames (dataplane/engine/frame_seal.h): what sealing and opening one control
// message costs, by payload size (an ack, a 4 KiB layout, a 1 MiB device state), and the two
// AEADs it could use (AES-256-GCM, chosen; ChaCha20-Poly1305) on the same bytes, for
// docs/security.md. Bytes per second are the message's payload.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <vector>

#include "dataplane/engine/frame_seal.h"

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

}  // namespace
