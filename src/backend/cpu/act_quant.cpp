// SPDX-License-Identifier: Apache-2.0
// Activations to 8-bit blocks (qkernels.h says the rounding), once per product, so that every
// weight block is dotted with them in integers. The AVX2 loop performs the same f32
// operations as the scalar one (max, one reciprocal, a product, rounding to nearest even), so
// both give the same bytes.
#include "backend/cpu/qkernels.h"
#include "backend/cpu/simd.h"

#include "common/quant.h"

#include <cmath>
#include <cstring>

namespace rabbit::cpu {

namespace {

// Below this a block is zero: 1 / d would overflow to infinity.
constexpr float k_tiny = 1e-30f;

// n (32 or 256) values to q8: returns d; q [n].
float quantize_block_scalar(const float* x, size_t n, int8_t* q) {
    float amax = 0.0f;
    for (size_t i = 0; i < n; ++i) amax = std::fmax(amax, std::fabs(x[i]));
    const float d = amax >= k_tiny ? amax / 127.0f : 0.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    for (size_t i = 0; i < n; ++i) q[i] = int8_t(std::nearbyint(x[i] * id));
    return d;
}

#ifdef RABBIT_X86
// The same, 32 at a time: _mm256_cvtps_epi32 rounds to nearest even (the default MXCSR).
RABBIT_AVX2 float quantize_block_avx2(const float* x, size_t n, int8_t* q) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
    __m128 h = _mm_max_ps(_mm256_castps256_ps128(m), _mm256_extractf128_ps(m, 1));
    h = _mm_max_ps(h, _mm_movehl_ps(h, h));
    h = _mm_max_ss(h, _mm_movehdup_ps(h));
    const float amax = _mm_cvtss_f32(h);
    const float d = amax >= k_tiny ? amax / 127.0f : 0.0f, id = d != 0.0f ? 1.0f / d : 0.0f;
    const __m256 vid = _mm256_set1_ps(id);
    for (size_t i = 0; i < n; i += 32) {
        __m256i v[4];
        for (int k = 0; k < 4; ++k) v[k] = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8 * k), vid));
        // pack: 32-bit -> 16-bit -> 8-bit, each within 128-bit lanes; the permute restores order.
        const __m256i p01 = _mm256_packs_epi32(v[0], v[1]), p23 = _mm256_packs_epi32(v[2], v[3]);
        const __m256i b = _mm256_packs_epi16(p01, p23);
        const __m256i ordered = _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
        _mm256_storeu_si256(reinterpret_cast<__m256i*>(q + i), ordered);
    }
    return d;
}
#endif

float quantize_block(const float* x, size_t n, int8_t* q, bool avx2) {
#ifdef RABBIT_X86
    if (avx2) return quantize_block_avx2(x, n, q);
#else
    (void)avx2;
#endif
    return quantize_block_scalar(x, n, q);
}

} // namespace

bool uses_q8k(DType t) { return dtype_block(t) == k_qkk; }

size_t act_bytes(DType t, size_t cols) {
    return uses_q8k(t) ? cols / k_qkk * sizeof(ActQ8K) : cols / k_qk * sizeof(ActQ8);
}

void quantize_act(DType t, const float* x, size_t cols, void* dst, bool avx2) {
    if (uses_q8k(t)) {
        auto* out = static_cast<ActQ8K*>(dst);
        for (size_t b = 0; b < cols / k_qkk; ++b) {
            ActQ8K& a = out[b];
            a.d = quantize_block(x + b * k_qkk, k_qkk, a.q, avx2);
            for (int g = 0; g < 16; ++g) {
                int s = 0;
                for (int i = 0; i < 16; ++i) s += a.q[16 * g + i];
                a.sums[g] = int16_t(s);
            }
        }
        return;
    }
    auto* out = static_cast<ActQ8*>(dst);
    for (size_t b = 0; b < cols / k_qk; ++b) {
        ActQ8& a = out[b];
        a.d = quantize_block(x + b * k_qk, k_qk, a.q, avx2);
        int s = 0;
        for (int i = 0; i < 32; ++i) s += a.q[i];
        a.s = a.d * float(s);
    }
}

} // namespace rabbit::cpu
