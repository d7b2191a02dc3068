// SPDX-License-Identifier: Apache-2.0
// What the CPU kernel files share to use AVX2 and AVX-512 (internal to src/backend/cpu/).
//
// The binary stays portable: nothing here is compiled with -mavx2 or -march. Each vector
// function carries its own target attribute (RABBIT_AVX2, RABBIT_AVX512, RABBIT_AVX512BF16)
// and runs only where cpu_isa() says the processor has those instructions; the always-inline
// helpers below are inlined into such functions, whose target they need.
#pragma once

#include "backend/cpu/kernels.h"
#include "common/dtype.h"

#include <cstddef>
#include <cstdint>

#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip its own uninitialized-use warnings (the "undefined" vectors
// some intrinsics start from); they are not about our code. (Ignored from here to the end of
// each kernel file that includes this header.)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <immintrin.h>
#define RABBIT_X86 1
#endif

#ifdef RABBIT_X86

#define RABBIT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define RABBIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define RABBIT_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))
#define RABBIT_AVX512VNNI __attribute__((target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")))
#define RABBIT_INLINE __attribute__((always_inline)) inline

namespace rabbit::simd {

// The sum of a vector's 8 floats.
RABBIT_AVX2 RABBIT_INLINE float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    return _mm_cvtss_f32(_mm_add_ss(s, sh));
}

// Elements [i, i + 8) of a row of dtype T, widened to f32.   p [>= i + 8] T
template <DType T>
RABBIT_AVX2 RABBIT_INLINE __m256 load8(const void* p, size_t i) {
    if constexpr (T == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(p) + i);
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

// Elements [i, i + 16) of a row of dtype T, widened to f32.   p [>= i + 16] T
template <DType T>
RABBIT_AVX512 RABBIT_INLINE __m512 load16(const void* p, size_t i) {
    if constexpr (T == DType::f32) return _mm512_loadu_ps(static_cast<const float*>(p) + i);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

// The four sums of four vectors, by a tree that shares its shuffles among them.
RABBIT_AVX512 RABBIT_INLINE __m128 reduce4(const __m512 v[4]) {
    // Per 128-bit lane: [v0 pairs, v1 pairs, ...] then [v0, v1, v2, v3] partial sums.
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(v[2], v[3]), _mm512_unpackhi_ps(v[2], v[3]));
    const __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 w = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps(w, 1));
}

} // namespace rabbit::simd

#endif // RABBIT_X86
