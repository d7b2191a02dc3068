// SPDX-License-Identifier: Apache-2.0
// Attention's two products for one query head, over the KV cache layout kernels.h describes:
// the scores against keys in transposed blocks, the sum of values weighted by the softmaxed
// scores.
#include "backend/cpu/kernels.h"
#include "backend/cpu/simd.h"

#include <algorithm>

namespace rabbit {

namespace {

constexpr size_t B = k_attn_block;

void scores_portable(const float* q, const float* kb, size_t hd, size_t b0, size_t b1, float scale, float* s) {
    for (size_t b = b0; b < b1; ++b) {
        float acc[B] = {};
        const float* k = kb + b * hd * B;
        for (size_t d = 0; d < hd; ++d)
            for (size_t i = 0; i < B; ++i) acc[i] += q[d] * k[d * B + i];
        for (size_t i = 0; i < B; ++i) s[b * B + i] = acc[i] * scale;
    }
}

void values_portable(const float* p, const float* v, size_t hd, size_t first, size_t end, float* out) {
    std::fill(out, out + hd, 0.0f);
    for (size_t j = first; j < end; ++j)
        for (size_t d = 0; d < hd; ++d) out[d] += p[j] * v[j * hd + d];
}

#ifdef RABBIT_X86
using namespace simd;

// A block's 16 scores are two vectors of 8; two blocks at a time keep four sums in flight.
RABBIT_AVX2 void scores_avx2(const float* q, const float* kb, size_t hd, size_t b0, size_t b1, float scale, float* s) {
    const __m256 sc = _mm256_set1_ps(scale);
    size_t b = b0;
    for (; b + 2 <= b1; b += 2) {
        __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float* k0 = kb + b * hd * B;
        const float* k1 = k0 + hd * B;
        for (size_t d = 0; d < hd; ++d) {
            const __m256 qd = _mm256_broadcast_ss(q + d);
            a0 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + d * B), a0);
            a1 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k0 + d * B + 8), a1);
            a2 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k1 + d * B), a2);
            a3 = _mm256_fmadd_ps(qd, _mm256_loadu_ps(k1 + d * B + 8), a3);
        }
        _mm256_storeu_ps(s + b * B, _mm256_mul_ps(a0, sc));
        _mm256_storeu_ps(s + b * B + 8, _mm256_mul_ps(a1, sc));
        _mm256_storeu_ps(s + b * B + 16, _mm256_mul_ps(a2, sc));
        _mm256_storeu_ps(s + b * B + 24, _mm256_mul_ps(a3, sc));
    }
    if (b < b1) scores_portable(q, kb, hd, b, b1, scale, s);
}

// Four blocks at a time: one broadcast of q[d] feeds four multiply-adds.
RABBIT_AVX512 void scores_avx512(const float* q, const float* kb, size_t hd, size_t b0, size_t b1, float scale, float* s) {
    const __m512 sc = _mm512_set1_ps(scale);
    size_t b = b0;
    for (; b + 4 <= b1; b += 4) {
        __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
        const float* k = kb + b * hd * B;
        const size_t stride = hd * B;
        for (size_t d = 0; d < hd; ++d) {
            const __m512 qd = _mm512_set1_ps(q[d]);
            a0 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + d * B), a0);
            a1 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + stride + d * B), a1);
            a2 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + 2 * stride + d * B), a2);
            a3 = _mm512_fmadd_ps(qd, _mm512_loadu_ps(k + 3 * stride + d * B), a3);
        }
        _mm512_storeu_ps(s + b * B, _mm512_mul_ps(a0, sc));
        _mm512_storeu_ps(s + (b + 1) * B, _mm512_mul_ps(a1, sc));
        _mm512_storeu_ps(s + (b + 2) * B, _mm512_mul_ps(a2, sc));
        _mm512_storeu_ps(s + (b + 3) * B, _mm512_mul_ps(a3, sc));
    }
    for (; b < b1; ++b) {
        __m512 a = _mm512_setzero_ps();
        const float* k = kb + b * hd * B;
        for (size_t d = 0; d < hd; ++d) a = _mm512_fmadd_ps(_mm512_set1_ps(q[d]), _mm512_loadu_ps(k + d * B), a);
        _mm512_storeu_ps(s + b * B, _mm512_mul_ps(a, sc));
    }
}

// The output row stays in registers: C vectors of 16 for head_dim 16 C.
template <size_t C>
RABBIT_AVX512 void values_avx512(const float* p, const float* v, size_t first, size_t end, float* out) {
    __m512 acc[C];
    for (auto& a : acc) a = _mm512_setzero_ps();
    for (size_t j = first; j < end; ++j) {
        const __m512 pj = _mm512_set1_ps(p[j]);
        const float* row = v + j * C * 16;
        for (size_t c = 0; c < C; ++c) acc[c] = _mm512_fmadd_ps(pj, _mm512_loadu_ps(row + c * 16), acc[c]);
    }
    for (size_t c = 0; c < C; ++c) _mm512_storeu_ps(out + c * 16, acc[c]);
}

template <size_t C>
RABBIT_AVX2 void values_avx2(const float* p, const float* v, size_t first, size_t end, float* out) {
    __m256 acc[C];
    for (auto& a : acc) a = _mm256_setzero_ps();
    for (size_t j = first; j < end; ++j) {
        const __m256 pj = _mm256_broadcast_ss(p + j);
        const float* row = v + j * C * 8;
        for (size_t c = 0; c < C; ++c) acc[c] = _mm256_fmadd_ps(pj, _mm256_loadu_ps(row + c * 8), acc[c]);
    }
    for (size_t c = 0; c < C; ++c) _mm256_storeu_ps(out + c * 8, acc[c]);
}

// The head dims whose weighted sum of values keeps the output row in registers, one template
// instance each; any other head_dim takes the portable loop, at every level. AVX2 has 16
// registers, so 256 (32 of its vectors) is not in its list. Adding a dim to a list changes
// that dim's rounding at that level (fused multiply-adds instead of the portable loop's).
template <size_t... Dims> struct HeadDims {};
using Avx512ValueDims = HeadDims<32, 64, 80, 96, 128, 256>;
using Avx2ValueDims = HeadDims<32, 64, 96, 128>;

// values_avx512 for head_dim hd if it is one of Dims; false if not.
template <size_t... Dims>
bool values_avx512_specialised(HeadDims<Dims...>, const float* p, const float* v, size_t hd, size_t first,
                               size_t end, float* out) {
    static_assert(((Dims % 16 == 0) && ...), "an AVX-512 head dim is whole vectors of 16");
    return ((hd == Dims && (values_avx512<Dims / 16>(p, v, first, end, out), true)) || ...);
}

// values_avx2 for head_dim hd if it is one of Dims; false if not.
template <size_t... Dims>
bool values_avx2_specialised(HeadDims<Dims...>, const float* p, const float* v, size_t hd, size_t first,
                             size_t end, float* out) {
    static_assert(((Dims % 8 == 0) && ...), "an AVX2 head dim is whole vectors of 8");
    return ((hd == Dims && (values_avx2<Dims / 8>(p, v, first, end, out), true)) || ...);
}
#endif

} // namespace

void attention_scores(const float* q, const float* k_blocks, size_t head_dim, size_t first, size_t end, float scale,
                      float* scores) {
    if (first >= end) return;
    const size_t b0 = first / B, b1 = (end + B - 1) / B;
#ifdef RABBIT_X86
    const Isa isa = cpu_isa();
    if (isa >= Isa::avx512) return scores_avx512(q, k_blocks, head_dim, b0, b1, scale, scores);
    if (isa == Isa::avx2) return scores_avx2(q, k_blocks, head_dim, b0, b1, scale, scores);
#endif
    scores_portable(q, k_blocks, head_dim, b0, b1, scale, scores);
}

void attention_values(const float* p, const float* v, size_t head_dim, size_t first, size_t end, float* out) {
#ifdef RABBIT_X86
    const Isa isa = cpu_isa();
    if (isa >= Isa::avx512 && values_avx512_specialised(Avx512ValueDims{}, p, v, head_dim, first, end, out)) return;
    if (isa >= Isa::avx2 && values_avx2_specialised(Avx2ValueDims{}, p, v, head_dim, first, end, out)) return;
#endif
    values_portable(p, v, head_dim, first, end, out);
}

} // namespace rabbit
