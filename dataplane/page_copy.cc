#include "dataplane/page_copy.h"

#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace tern {

void copy_streaming(uint8_t* dst, const uint8_t* src, size_t n) {
  copy_streaming_unfenced(dst, src, n);
  streaming_fence();
}

void streaming_fence() {
#if defined(__SSE2__)
  _mm_sfence();  // streaming stores are weakly ordered: order them before what follows
#endif
}

void copy_streaming_unfenced(uint8_t* dst, const uint8_t* src, size_t n) {
#if defined(__SSE2__)
  if ((reinterpret_cast<uintptr_t>(dst) & 15) == 0 && (n & 63) == 0) {
    for (size_t i = 0; i < n; i += 64) {
      const __m128i a = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i));
      const __m128i b = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 16));
      const __m128i c = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 32));
      const __m128i d = _mm_loadu_si128(reinterpret_cast<const __m128i*>(src + i + 48));
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i), a);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 16), b);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 32), c);
      _mm_stream_si128(reinterpret_cast<__m128i*>(dst + i + 48), d);
    }
    return;
  }
#endif
  std::memcpy(dst, src, n);
}

}  // namespace tern
