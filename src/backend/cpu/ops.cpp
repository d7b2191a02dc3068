// SPDX-License-Identifier: Apache-2.0
// The elementwise and per-row ops: RMSNorm, SwiGLU, softmax, RoPE. Softmax and SiLU use a
// vectorized exp.
#include "backend/cpu/kernels.h"
#include "backend/cpu/simd.h"

#include "common/thread_pool.h"

#include <algorithm>
#include <cmath>

namespace rabbit {

namespace {

#ifdef RABBIT_X86
using namespace simd;

// exp(x) for a vector: x = n ln2 + r with |r| <= ln2/2, e^r by its Taylor series to r^7
// (relative error under 2e-7, about an ulp), times 2^n. Inputs below -87.3 give about 1e-38
// (the softmax and silu uses only need that to vanish), above 88.7 give 2^128 = inf.
RABBIT_AVX512 RABBIT_INLINE __m512 exp_avx512(__m512 x) {
    x = _mm512_max_ps(_mm512_min_ps(x, _mm512_set1_ps(88.7f)), _mm512_set1_ps(-87.3f));
    const __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), x);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_set1_ps(1.0f / 5040);
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 720));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 120));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 24));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f / 6));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(0.5f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.0f));
    return _mm512_scalef_ps(p, n);
}

RABBIT_AVX2 RABBIT_INLINE __m256 exp_avx2(__m256 x) {
    x = _mm256_max_ps(_mm256_min_ps(x, _mm256_set1_ps(88.7f)), _mm256_set1_ps(-87.3f));
    const __m256 n = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)), _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(n, _mm256_set1_ps(0.693359375f), x);
    r = _mm256_fnmadd_ps(n, _mm256_set1_ps(-2.12194440e-4f), r);
    __m256 p = _mm256_set1_ps(1.0f / 5040);
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 720));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 120));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 24));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f / 6));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(0.5f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.0f));
    // 2^n in two steps, so that n = 128 (x near 88.7) does not overflow the exponent field.
    const __m256i e = _mm256_cvtps_epi32(n);
    const __m256i h = _mm256_srai_epi32(e, 1);
    const __m256 s1 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(h, _mm256_set1_epi32(127)), 23));
    const __m256 s2 = _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_add_epi32(_mm256_sub_epi32(e, h), _mm256_set1_epi32(127)), 23));
    return _mm256_mul_ps(_mm256_mul_ps(p, s1), s2);
}

// x = exp(x - max); returns the sum.
RABBIT_AVX512 float exp_sub_sum_avx512(float* x, size_t n, float max) {
    const __m512 m = _mm512_set1_ps(max);
    __m512 sum = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_loadu_ps(x + i), m));
        _mm512_storeu_ps(x + i, e);
        sum = _mm512_add_ps(sum, e);
    }
    if (i < n) {
        const __mmask16 k = __mmask16((1u << (n - i)) - 1);
        const __m512 e = exp_avx512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));
        _mm512_mask_storeu_ps(x + i, k, e);
        sum = _mm512_add_ps(sum, _mm512_maskz_mov_ps(k, e));
    }
    return _mm512_reduce_add_ps(sum);
}

RABBIT_AVX2 float exp_sub_sum_avx2(float* x, size_t n, float max) {
    const __m256 m = _mm256_set1_ps(max);
    __m256 sum = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 e = exp_avx2(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        sum = _mm256_add_ps(sum, e);
    }
    float s = hsum8(sum);
    for (; i < n; ++i) {
        x[i] = std::exp(x[i] - max);
        s += x[i];
    }
    return s;
}

// out = silu(g) * u = g / (1 + exp(-g)) * u
RABBIT_AVX512 void swiglu_avx512(const float* g, const float* u, size_t n, float* out) {
    const __m512 one = _mm512_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 16 <= n; i += 16) {
        const __m512 gv = _mm512_loadu_ps(g + i);
        const __m512 den = _mm512_add_ps(one, exp_avx512(_mm512_sub_ps(_mm512_setzero_ps(), gv)));
        _mm512_storeu_ps(out + i, _mm512_mul_ps(_mm512_div_ps(gv, den), _mm512_loadu_ps(u + i)));
    }
    for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}

RABBIT_AVX2 void swiglu_avx2(const float* g, const float* u, size_t n, float* out) {
    const __m256 one = _mm256_set1_ps(1.0f);
    size_t i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 gv = _mm256_loadu_ps(g + i);
        const __m256 den = _mm256_add_ps(one, exp_avx2(_mm256_sub_ps(_mm256_setzero_ps(), gv)));
        _mm256_storeu_ps(out + i, _mm256_mul_ps(_mm256_div_ps(gv, den), _mm256_loadu_ps(u + i)));
    }
    for (; i < n; ++i) out[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
}
#endif

} // namespace

void rmsnorm(const float* x, const float* weight, float eps, size_t n, float* y) {
    // As the reference: the mean of squares in f32, then x * rsqrt(mean + eps) * weight.
    const float ss = dot_f32(x, x, n);
    const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
    for (size_t i = 0; i < n; ++i) y[i] = weight[i] * (x[i] * inv);
}

void swiglu(ThreadPool& pool, const float* gate_up, size_t tokens, size_t inter, float* out) {
    // Blocks of a token's row, so that the inner loops run over contiguous elements.
    const size_t chunk = 1024, per_row = (inter + chunk - 1) / chunk;
    [[maybe_unused]] const Isa isa = cpu_isa();
    pool.parallel_for(tokens * per_row, [&](size_t b, size_t e) {
        for (size_t k = b; k < e; ++k) {
            const size_t t = k / per_row, i0 = k % per_row * chunk, n = std::min(chunk, inter - i0);
            const float* g = gate_up + t * 2 * inter + i0;
            const float* u = g + inter;
            float* o = out + t * inter + i0;
#ifdef RABBIT_X86
            if (isa >= Isa::avx512) {
                swiglu_avx512(g, u, n, o);
                continue;
            }
            if (isa == Isa::avx2) {
                swiglu_avx2(g, u, n, o);
                continue;
            }
#endif
            for (size_t i = 0; i < n; ++i) o[i] = g[i] / (1.0f + std::exp(-g[i])) * u[i];
        }
    }, 4);
}

void softmax(float* x, size_t n) {
    if (n == 0) return;
    const float max = *std::max_element(x, x + n);
    float sum = 0;
#ifdef RABBIT_X86
    const Isa isa = cpu_isa();
    if (isa >= Isa::avx512) sum = exp_sub_sum_avx512(x, n, max);
    else if (isa == Isa::avx2) sum = exp_sub_sum_avx2(x, n, max);
    else
#endif
        for (size_t i = 0; i < n; ++i) {
            x[i] = std::exp(x[i] - max);
            sum += x[i];
        }
    const float inv = 1.0f / sum;
    for (size_t i = 0; i < n; ++i) x[i] *= inv;
}

void rope(float* x, const float* cos, const float* sin, size_t head_dim) {
    const size_t half = head_dim / 2;
    for (size_t i = 0; i < half; ++i) {
        const float a = x[i], b = x[i + half];
        x[i] = a * cos[i] - b * sin[i];
        x[i + half] = b * cos[i] + a * sin[i];
    }
}

} // namespace rabbit
