// SPDX-License-Identifier: Apache-2.0
// Vectorized dequantization of weight rows for the exact products (qexact.cpp): the values of
// common/quant.h's dequantize, to f32 rounding (d * q + m may be one fused rounding; every
// other operation is the reference's). AVX2 for q8_0 .. q5_1, q4_k, q5_k and q6_k (it also
// serves AVX-512 processors: the stores, not the width, bound it); q2_k, q3_k and the
// portable build go through the scalar dequantize.
#include "backend/cpu/kernels.h"
#include "backend/cpu/qexact.h"
#include "backend/cpu/simd.h"

#include "common/error.h"
#include "common/quant.h"

#include <cstring>

namespace rabbit::cpu {

namespace {

#ifdef RABBIT_X86
using namespace simd;

// 8 bytes (signed or unsigned as the name says) to 8 floats.
RABBIT_AVX2 RABBIT_INLINE __m256 s8_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(v)); }
RABBIT_AVX2 RABBIT_INLINE __m256 u8_ps(__m128i v) { return _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(v)); }

// 16 quanta (bytes, signed) times d, to y[0..16).
RABBIT_AVX2 RABBIT_INLINE void store16_scaled(__m128i q, __m256 d, float* y) {
    _mm256_storeu_ps(y, _mm256_mul_ps(s8_ps(q), d));
    _mm256_storeu_ps(y + 8, _mm256_mul_ps(s8_ps(_mm_srli_si128(q, 8)), d));
}

// 16 quanta (bytes, unsigned) as d * q + m (fused), to y[0..16).
RABBIT_AVX2 RABBIT_INLINE void store16_affine(__m128i q, __m256 d, __m256 m, float* y) {
    _mm256_storeu_ps(y, _mm256_fmadd_ps(u8_ps(q), d, m));
    _mm256_storeu_ps(y + 8, _mm256_fmadd_ps(u8_ps(_mm_srli_si128(q, 8)), d, m));
}

// Bit 4 of the 16 elements j0 .. j0 + 15 of a q5 block (bit j of qh), as bytes 0 or 16.
RABBIT_AVX2 RABBIT_INLINE __m128i q5_high(uint32_t qh, int j0) {
    const __m128i bits = _mm_set1_epi16(short(qh >> j0 & 0xFFFF));
    // byte k takes byte k / 8 of the 16 bits, then its bit k % 8
    const __m128i spread = _mm_shuffle_epi8(bits, _mm_set_epi8(1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0));
    const __m128i mask = _mm_set_epi8(-128, 64, 32, 16, 8, 4, 2, 1, -128, 64, 32, 16, 8, 4, 2, 1);
    return _mm_and_si128(_mm_cmpeq_epi8(_mm_and_si128(spread, mask), mask), _mm_set1_epi8(16));
}

// 32 unsigned quanta (bytes) as dl * q - ml, to y[0..32).
RABBIT_AVX2 RABBIT_INLINE void store32_kq(__m256i q, __m256 dl, __m256 ml, float* y) {
    const __m128i a = _mm256_castsi256_si128(q), b = _mm256_extracti128_si256(q, 1);
    _mm256_storeu_ps(y, _mm256_fmsub_ps(u8_ps(a), dl, ml));
    _mm256_storeu_ps(y + 8, _mm256_fmsub_ps(u8_ps(_mm_srli_si128(a, 8)), dl, ml));
    _mm256_storeu_ps(y + 16, _mm256_fmsub_ps(u8_ps(b), dl, ml));
    _mm256_storeu_ps(y + 24, _mm256_fmsub_ps(u8_ps(_mm_srli_si128(b, 8)), dl, ml));
}

// q4_k and q5_k (with_high): 8 groups of 32, group g the nibble g % 2 of qs[32 (g / 2) + l],
// q5_k's bit 4 bit g of qh[l]; dl = d * sc and ml = dmin * m rounded as the reference does.
template <bool with_high>
RABBIT_AVX2 void dequant_q45k_avx2(const uint8_t* src, float* y, size_t n) {
    const size_t bb = with_high ? sizeof(BlockQ5_K) : sizeof(BlockQ4_K);
    const __m256i lo4 = _mm256_set1_epi8(0xF), one = _mm256_set1_epi8(1);
    for (size_t i = 0; i < n / 256; ++i, src += bb, y += 256) {
        uint16_t dh, mh;
        std::memcpy(&dh, src, 2);
        std::memcpy(&mh, src + 2, 2);
        const float d = f16_to_f32(dh), dmin = f16_to_f32(mh);
        const uint8_t* scales = src + 4;
        const uint8_t* qh = src + 4 + k_k_scale_bytes;
        const uint8_t* qs = with_high ? qh + 32 : qh;
        const __m256i hv = with_high ? _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qh)) : _mm256_setzero_si256();
        for (int g = 0; g < 8; ++g) {
            uint8_t sc = 0, m = 0;
            k_scale_min(g, scales, &sc, &m);
            const __m256i raw = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(qs + 32 * (g / 2)));
            __m256i q = _mm256_and_si256(g % 2 ? _mm256_srli_epi16(raw, 4) : raw, lo4);
            if (with_high) {
                const __m256i bit = _mm256_and_si256(_mm256_srl_epi16(hv, _mm_cvtsi32_si128(g)), one);
                q = _mm256_or_si256(q, _mm256_slli_epi16(bit, 4)); // bit is 0/1 per byte: no carry
            }
            store32_kq(q, _mm256_set1_ps(d * float(sc)), _mm256_set1_ps(dmin * float(m)), y + 32 * g);
        }
    }
}

// q6_k: element 128 h + 32 s + l is (low | high << 4) - 32, low nibble s / 2 of
// ql[64 h + 32 (s % 2) + l], high bits 2s.. of qh[32 h + l]; its group (of 16) scale d * sc.
RABBIT_AVX2 void dequant_q6k_avx2(const uint8_t* src, float* y, size_t n) {
    const __m256i lo4 = _mm256_set1_epi8(0xF), lo2 = _mm256_set1_epi8(3), k32 = _mm256_set1_epi8(32);
    for (size_t i = 0; i < n / 256; ++i, y += 256) {
        const auto& b = reinterpret_cast<const BlockQ6_K*>(src)[i];
        const float d = f16_to_f32(b.d);
        for (int h = 0; h < 2; ++h) {
            const __m256i hv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.qh + 32 * h));
            for (int s = 0; s < 4; ++s) {
                const __m256i lv = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b.ql + 64 * h + 32 * (s % 2)));
                const __m256i low = _mm256_and_si256(s / 2 ? _mm256_srli_epi16(lv, 4) : lv, lo4);
                const __m256i high = _mm256_and_si256(_mm256_srl_epi16(hv, _mm_cvtsi32_si128(2 * s)), lo2);
                const __m256i q = _mm256_sub_epi8(_mm256_or_si256(low, _mm256_slli_epi16(high, 4)), k32);
                const int e = 128 * h + 32 * s;
                store16_scaled(_mm256_castsi256_si128(q), _mm256_set1_ps(d * float(b.scales[e / 16])), y + e);
                store16_scaled(_mm256_extracti128_si256(q, 1), _mm256_set1_ps(d * float(b.scales[e / 16 + 1])), y + e + 16);
            }
        }
    }
}

// One row of n elements (a multiple of the type's block) to f32.   y [n]
RABBIT_AVX2 void dequant_row_avx2(DType t, const uint8_t* src, float* y, size_t n) {
    const __m128i lo4 = _mm_set1_epi8(0xF);
    switch (t) {
    case DType::q8_0:
        for (size_t i = 0; i < n / 32; ++i, y += 32) {
            const auto& b = reinterpret_cast<const BlockQ8_0*>(src)[i];
            const __m256 d = _mm256_set1_ps(f16_to_f32(b.d));
            store16_scaled(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)), d, y);
            store16_scaled(_mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs + 16)), d, y + 16);
        }
        return;
    case DType::q4_0:
        for (size_t i = 0; i < n / 32; ++i, y += 32) {
            const auto& b = reinterpret_cast<const BlockQ4_0*>(src)[i];
            const __m256 d = _mm256_set1_ps(f16_to_f32(b.d));
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)), eight = _mm_set1_epi8(8);
            store16_scaled(_mm_sub_epi8(_mm_and_si128(q, lo4), eight), d, y);
            store16_scaled(_mm_sub_epi8(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), eight), d, y + 16);
        }
        return;
    case DType::q4_1:
        for (size_t i = 0; i < n / 32; ++i, y += 32) {
            const auto& b = reinterpret_cast<const BlockQ4_1*>(src)[i];
            const __m256 d = _mm256_set1_ps(f16_to_f32(b.d)), m = _mm256_set1_ps(f16_to_f32(b.m));
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
            store16_affine(_mm_and_si128(q, lo4), d, m, y);
            store16_affine(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), d, m, y + 16);
        }
        return;
    case DType::q5_0:
        for (size_t i = 0; i < n / 32; ++i, y += 32) {
            const auto& b = reinterpret_cast<const BlockQ5_0*>(src)[i];
            const __m256 d = _mm256_set1_ps(f16_to_f32(b.d));
            uint32_t qh;
            std::memcpy(&qh, b.qh, 4);
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs)), sixteen = _mm_set1_epi8(16);
            store16_scaled(_mm_sub_epi8(_mm_or_si128(_mm_and_si128(q, lo4), q5_high(qh, 0)), sixteen), d, y);
            store16_scaled(_mm_sub_epi8(_mm_or_si128(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), q5_high(qh, 16)), sixteen),
                           d, y + 16);
        }
        return;
    case DType::q5_1:
        for (size_t i = 0; i < n / 32; ++i, y += 32) {
            const auto& b = reinterpret_cast<const BlockQ5_1*>(src)[i];
            const __m256 d = _mm256_set1_ps(f16_to_f32(b.d)), m = _mm256_set1_ps(f16_to_f32(b.m));
            uint32_t qh;
            std::memcpy(&qh, b.qh, 4);
            const __m128i q = _mm_loadu_si128(reinterpret_cast<const __m128i*>(b.qs));
            store16_affine(_mm_or_si128(_mm_and_si128(q, lo4), q5_high(qh, 0)), d, m, y);
            store16_affine(_mm_or_si128(_mm_and_si128(_mm_srli_epi16(q, 4), lo4), q5_high(qh, 16)), d, m, y + 16);
        }
        return;
    case DType::q4_k: return dequant_q45k_avx2<false>(src, y, n);
    case DType::q5_k: return dequant_q45k_avx2<true>(src, y, n);
    case DType::q6_k: return dequant_q6k_avx2(src, y, n);
    default: return dequantize(t, src, y, n);
    }
}
#endif

} // namespace

bool has_fast_dequant(DType t) {
#ifdef RABBIT_X86
    return cpu_isa() >= Isa::avx2 && t != DType::q2_k && t != DType::q3_k;
#else
    (void)t;
    return false;
#endif
}

void dequant_rows(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, float* y, size_t ldy) {
#ifdef RABBIT_X86
    if (has_fast_dequant(t)) {
        for (size_t r = 0; r < nrows; ++r) dequant_row_avx2(t, w + r * rb, y + r * ldy, cols);
        return;
    }
#endif
    for (size_t r = 0; r < nrows; ++r) dequantize(t, w + r * rb, y + r * ldy, cols);
}

} // namespace rabbit::cpu
