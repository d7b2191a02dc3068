// SPDX-License-Identifier: Apache-2.0
#include "backend/cpu/kernels.h"

#include "common/thread_pool.h"
#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#if defined(__x86_64__) || defined(__i386__)
#if defined(__GNUC__) && !defined(__clang__)
// GCC 12's AVX-512 headers trip its own uninitialized-use warnings (the "undefined" vectors
// some intrinsics start from); they are not about this file's code.
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#include <cpuid.h>
#include <immintrin.h>
#define RABBIT_X86 1
#endif

namespace rabbit {

namespace {

// ---- which instructions ----------------------------------------------------------------------

Isa detect_isa() {
    Isa best = Isa::portable;
#ifdef RABBIT_X86
    // CPUID says what the processor has; XGETBV whether the operating system saves the
    // registers (YMM for AVX2, opmask and ZMM too for AVX-512).
    unsigned eax, ebx, ecx, edx;
    if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) && (ecx & bit_OSXSAVE)) {
        const bool fma = ecx & bit_FMA, f16c = ecx & bit_F16C;
        unsigned lo, hi;
        __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
        const bool ymm = (lo & 0x6) == 0x6, zmm = (lo & 0xe6) == 0xe6;
        unsigned b7 = 0, c7 = 0, d7 = 0, a7 = 0, a71 = 0, unused = 0;
        if (__get_cpuid_count(7, 0, &a7, &b7, &c7, &d7)) __get_cpuid_count(7, 1, &a71, &unused, &unused, &unused);
        const bool avx2 = b7 & (1u << 5), avx512f = b7 & (1u << 16), avx512bw = b7 & (1u << 30),
                   avx512vl = b7 & (1u << 31), avx512bf16 = a71 & (1u << 5);
        if (ymm && avx2 && fma && f16c) best = Isa::avx2;
        if (best == Isa::avx2 && zmm && avx512f && avx512bw && avx512vl) best = Isa::avx512;
        if (best == Isa::avx512 && avx512bf16) best = Isa::avx512bf16;
    }
#endif
    // RABBIT_ISA=portable|avx2|avx512 caps it (the tests run every level the machine has).
    if (const char* cap = std::getenv("RABBIT_ISA"); cap && *cap) {
        const std::string c = cap;
        const Isa limit = c == "portable" ? Isa::portable : c == "avx2" ? Isa::avx2 : c == "avx512" ? Isa::avx512 : best;
        best = std::min(best, limit);
    }
    return best;
}

const Isa g_isa = detect_isa();

// ---- portable loops --------------------------------------------------------------------------

float dot_f32_portable(const float* a, const float* b, size_t n) {
    float s0 = 0, s1 = 0, s2 = 0, s3 = 0;
    size_t i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += a[i] * b[i];
        s1 += a[i + 1] * b[i + 1];
        s2 += a[i + 2] * b[i + 2];
        s3 += a[i + 3] * b[i + 3];
    }
    for (; i < n; ++i) s0 += a[i] * b[i];
    return (s0 + s1) + (s2 + s3);
}

#ifdef RABBIT_X86
// ---- AVX2 / FMA / F16C -----------------------------------------------------------------------

#define RABBIT_AVX2 __attribute__((target("avx2,fma,f16c")))
#define RABBIT_INLINE __attribute__((always_inline)) inline

RABBIT_AVX2 RABBIT_INLINE float hsum8(__m256 v) {
    __m128 lo = _mm256_castps256_ps128(v), hi = _mm256_extractf128_ps(v, 1);
    lo = _mm_add_ps(lo, hi);
    __m128 sh = _mm_movehdup_ps(lo);
    __m128 s = _mm_add_ps(lo, sh);
    sh = _mm_movehl_ps(sh, s);
    return _mm_cvtss_f32(_mm_add_ss(s, sh));
}

template <DType T>
RABBIT_AVX2 RABBIT_INLINE __m256 load8(const void* p, size_t i) {
    if constexpr (T == DType::f32) return _mm256_loadu_ps(static_cast<const float*>(p) + i);
    const __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::bf16) return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
    return _mm256_cvtph_ps(h);
}

template <DType T>
RABBIT_AVX2 float dot_avx2(const void* w, const float* x, size_t n) {
    __m256 s0 = _mm256_setzero_ps(), s1 = _mm256_setzero_ps(), s2 = _mm256_setzero_ps(), s3 = _mm256_setzero_ps();
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        s0 = _mm256_fmadd_ps(load8<T>(w, i), _mm256_loadu_ps(x + i), s0);
        s1 = _mm256_fmadd_ps(load8<T>(w, i + 8), _mm256_loadu_ps(x + i + 8), s1);
        s2 = _mm256_fmadd_ps(load8<T>(w, i + 16), _mm256_loadu_ps(x + i + 16), s2);
        s3 = _mm256_fmadd_ps(load8<T>(w, i + 24), _mm256_loadu_ps(x + i + 24), s3);
    }
    for (; i + 8 <= n; i += 8) s0 = _mm256_fmadd_ps(load8<T>(w, i), _mm256_loadu_ps(x + i), s0);
    float s = hsum8(_mm256_add_ps(_mm256_add_ps(s0, s1), _mm256_add_ps(s2, s3)));
    float tail[8];
    for (; i < n; ++i) {
        convert_elements(static_cast<const uint8_t*>(w) + i * dtype_size(T), T, tail, DType::f32, 1);
        s += tail[0] * x[i];
    }
    return s;
}

RABBIT_AVX2 void widen_avx2(const void* src, DType t, float* out, size_t n) {
    size_t i = 0;
    if (t == DType::bf16)
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8<DType::bf16>(src, i));
    else
        for (; i + 8 <= n; i += 8) _mm256_storeu_ps(out + i, load8<DType::f16>(src, i));
    convert_elements(static_cast<const uint16_t*>(src) + i, t, out + i, DType::f32, n - i);
}

// The prefill tile: 2 weight rows x 4 tokens, f32, n a multiple of 8 (padded).
//   w [2, ld] f32, x [4, ld] f32, out [4][2]
RABBIT_AVX2 void tile_avx2(const float* w, const float* x, size_t n, size_t ld, float out[4][2]) {
    __m256 acc[4][2];
    for (auto& t : acc)
        for (auto& a : t) a = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) {
        const __m256 w0 = _mm256_loadu_ps(w + i), w1 = _mm256_loadu_ps(w + ld + i);
        for (int t = 0; t < 4; ++t) {
            const __m256 xv = _mm256_loadu_ps(x + size_t(t) * ld + i);
            acc[t][0] = _mm256_fmadd_ps(w0, xv, acc[t][0]);
            acc[t][1] = _mm256_fmadd_ps(w1, xv, acc[t][1]);
        }
    }
    for (int t = 0; t < 4; ++t)
        for (int r = 0; r < 2; ++r) out[t][r] = hsum8(acc[t][r]);
}

// ---- AVX-512 ---------------------------------------------------------------------------------

#define RABBIT_AVX512 __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define RABBIT_AVX512BF16 __attribute__((target("avx512f,avx512bw,avx512vl,avx512bf16,avx2,fma,f16c")))

template <DType T>
RABBIT_AVX512 RABBIT_INLINE __m512 load16(const void* p, size_t i) {
    if constexpr (T == DType::f32) return _mm512_loadu_ps(static_cast<const float*>(p) + i);
    const __m256i h = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(static_cast<const uint16_t*>(p) + i));
    if constexpr (T == DType::bf16) return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
    return _mm512_cvtph_ps(h);
}

template <DType T>
RABBIT_AVX512 float dot_avx512(const void* w, const float* x, size_t n) {
    __m512 s0 = _mm512_setzero_ps(), s1 = _mm512_setzero_ps(), s2 = _mm512_setzero_ps(), s3 = _mm512_setzero_ps();
    size_t i = 0;
    for (; i + 64 <= n; i += 64) {
        s0 = _mm512_fmadd_ps(load16<T>(w, i), _mm512_loadu_ps(x + i), s0);
        s1 = _mm512_fmadd_ps(load16<T>(w, i + 16), _mm512_loadu_ps(x + i + 16), s1);
        s2 = _mm512_fmadd_ps(load16<T>(w, i + 32), _mm512_loadu_ps(x + i + 32), s2);
        s3 = _mm512_fmadd_ps(load16<T>(w, i + 48), _mm512_loadu_ps(x + i + 48), s3);
    }
    for (; i + 16 <= n; i += 16) s0 = _mm512_fmadd_ps(load16<T>(w, i), _mm512_loadu_ps(x + i), s0);
    float s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(s0, s1), _mm512_add_ps(s2, s3)));
    float tail[1];
    for (; i < n; ++i) {
        convert_elements(static_cast<const uint8_t*>(w) + i * dtype_size(T), T, tail, DType::f32, 1);
        s += tail[0] * x[i];
    }
    return s;
}

// Four weight rows dotted with one activation row: the activation is loaded once for all
// four, and one reduction pass ends them (decode's matrix-vector product).
template <DType T>
RABBIT_AVX512 void dot4_avx512(const void* w, size_t stride, const float* x, size_t n, float out[4]) {
    __m512 acc[4][2];
    for (auto& r : acc) r[0] = r[1] = _mm512_setzero_ps();
    const auto* base = static_cast<const uint8_t*>(w);
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512 x0 = _mm512_loadu_ps(x + i), x1 = _mm512_loadu_ps(x + i + 16);
        for (int r = 0; r < 4; ++r) {
            const void* row = base + size_t(r) * stride;
            acc[r][0] = _mm512_fmadd_ps(load16<T>(row, i), x0, acc[r][0]);
            acc[r][1] = _mm512_fmadd_ps(load16<T>(row, i + 16), x1, acc[r][1]);
        }
    }
    for (; i + 16 <= n; i += 16) {
        const __m512 x0 = _mm512_loadu_ps(x + i);
        for (int r = 0; r < 4; ++r) acc[r][0] = _mm512_fmadd_ps(load16<T>(base + size_t(r) * stride, i), x0, acc[r][0]);
    }
    for (int r = 0; r < 4; ++r) {
        float s = _mm512_reduce_add_ps(_mm512_add_ps(acc[r][0], acc[r][1]));
        float v;
        for (size_t k = i; k < n; ++k) {
            convert_elements(base + size_t(r) * stride + k * dtype_size(T), T, &v, DType::f32, 1);
            s += v * x[k];
        }
        out[r] = s;
    }
}

// The four sums of four vectors, by a tree that shares its shuffles among them.
RABBIT_AVX512 RABBIT_INLINE __m128 reduce4_avx512(const __m512 v[4]) {
    // Per 128-bit lane: [v0 pairs, v1 pairs, ...] then [v0, v1, v2, v3] partial sums.
    const __m512 t0 = _mm512_add_ps(_mm512_unpacklo_ps(v[0], v[1]), _mm512_unpackhi_ps(v[0], v[1]));
    const __m512 t1 = _mm512_add_ps(_mm512_unpacklo_ps(v[2], v[3]), _mm512_unpackhi_ps(v[2], v[3]));
    const __m512 u = _mm512_add_ps(_mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(1, 0, 1, 0)),
                                   _mm512_shuffle_ps(t0, t1, _MM_SHUFFLE(3, 2, 3, 2)));
    const __m256 w = _mm256_add_ps(_mm512_castps512_ps256(u), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(u), 1)));
    return _mm_add_ps(_mm256_castps256_ps128(w), _mm256_extractf128_ps(w, 1));
}

// The prefill tile: 4 weight rows x 4 tokens, f32, n a multiple of 16 (padded).
RABBIT_AVX512 void tile_avx512(const float* w, const float* x, size_t n, size_t ld, float out[4][4]) {
    __m512 acc[4][4];
    for (auto& t : acc)
        for (auto& a : t) a = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __m512 wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = _mm512_loadu_ps(w + size_t(r) * ld + i);
        for (int t = 0; t < 4; ++t) {
            const __m512 xv = _mm512_loadu_ps(x + size_t(t) * ld + i);
            for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    for (int t = 0; t < 4; ++t) _mm_storeu_ps(out[t], reduce4_avx512(acc[t]));
}

// The bf16 prefill tile: 4 weight rows (bf16, read in place) x 4 tokens (rounded to bf16),
// pairs multiplied and summed in f32 by vdpbf16ps. n a multiple of 32 (padded: `wtail`
// masks the weights' last partial block).
RABBIT_AVX512BF16 void tile_bf16(const uint16_t* const w[4], const uint16_t* x, size_t n, size_t ld_x, size_t full,
                                 __mmask32 wtail, float out[4][4]) {
    __m512 acc[4][4];
    for (auto& t : acc)
        for (auto& a : t) a = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 32) {
        __m512bh wv[4];
        const bool last = i >= full;
        for (int r = 0; r < 4; ++r)
            wv[r] = (__m512bh)(last ? _mm512_maskz_loadu_epi16(wtail, w[r] + i) : _mm512_loadu_si512(w[r] + i));
        for (int t = 0; t < 4; ++t) {
            const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + size_t(t) * ld_x + i);
            for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_dpbf16_ps(acc[t][r], wv[r], xv);
        }
    }
    for (int t = 0; t < 4; ++t) _mm_storeu_ps(out[t], reduce4_avx512(acc[t]));
}

// Decode with bf16 weights and activations: four weight rows (read in place) dotted with one
// activation row, bf16 pairs summed in f32; `tail` masks the last partial 32.
RABBIT_AVX512BF16 void dot4_bf16(const uint16_t* w, size_t cols, const uint16_t* x, size_t full, __mmask32 tail, float out[4]) {
    __m512 acc[4];
    for (auto& a : acc) a = _mm512_setzero_ps();
    size_t i = 0;
    for (; i < full; i += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i);
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_loadu_si512(w + size_t(r) * cols + i), xv);
    }
    if (i < cols) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail, x + i);
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_maskz_loadu_epi16(tail, w + size_t(r) * cols + i), xv);
    }
    _mm_storeu_ps(out, reduce4_avx512(acc));
}

// Rounds f32 to bf16, to nearest even, 32 at a time.
RABBIT_AVX512BF16 void to_bf16_avx512(const float* src, uint16_t* dst, size_t n) {
    size_t i = 0;
    for (; i + 32 <= n; i += 32) {
        const __m512bh v = _mm512_cvtne2ps_pbh(_mm512_loadu_ps(src + i + 16), _mm512_loadu_ps(src + i));
        _mm512_storeu_si512(dst + i, (__m512i)v);
    }
    for (; i < n; ++i) dst[i] = f32_to_bf16(src[i]);
}
#endif

// A weight row dotted with an activation row, whatever the weight's dtype.
float dot_row(const Matrix& w, uint64_t r, const float* x) {
    const size_t n = size_t(w.cols);
    const void* row = static_cast<const uint8_t*>(w.data) + r * w.cols * dtype_size(w.dtype);
#ifdef RABBIT_X86
    if (g_isa >= Isa::avx512) {
        if (w.dtype == DType::f32) return dot_avx512<DType::f32>(row, x, n);
        if (w.dtype == DType::bf16) return dot_avx512<DType::bf16>(row, x, n);
        return dot_avx512<DType::f16>(row, x, n);
    }
    if (g_isa == Isa::avx2) {
        if (w.dtype == DType::f32) return dot_avx2<DType::f32>(row, x, n);
        if (w.dtype == DType::bf16) return dot_avx2<DType::bf16>(row, x, n);
        return dot_avx2<DType::f16>(row, x, n);
    }
#endif
    if (w.dtype == DType::f32) return dot_f32_portable(static_cast<const float*>(row), x, n);
    thread_local std::vector<float> tmp;
    tmp.resize(n);
    convert_elements(row, w.dtype, tmp.data(), DType::f32, n);
    return dot_f32_portable(tmp.data(), x, n);
}

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

// Prefill with f32 activations: blocks of weight rows widened once into a padded tile
// buffer, multiplied with tokens four at a time.
void matmul_tiled_f32(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                      size_t ldy) {
    const size_t rows = size_t(w.rows), cols = size_t(w.cols);
    const bool avx512 = g_isa >= Isa::avx512;
    const size_t rblock = avx512 ? 4 : 2, lane = avx512 ? 16 : 8;
    const size_t ld = round_up(cols, lane);
    const size_t tpad = round_up(tokens, 4);
    // Activations padded with zeros to whole tiles.
    std::vector<float> xp(tpad * ld, 0.0f);
    for (size_t t = 0; t < tokens; ++t) std::memcpy(xp.data() + t * ld, x + t * cols, cols * 4);
    const size_t blocks = (rows + rblock - 1) / rblock;
    pool.parallel_for(blocks, [&](size_t b0, size_t b1) {
        std::vector<float> wt(rblock * ld, 0.0f);
        for (size_t blk = b0; blk < b1; ++blk) {
            const size_t r0 = blk * rblock, nr = std::min(rblock, rows - r0);
            for (size_t k = 0; k < rblock; ++k) {
                if (k < nr) widen_row(w, r0 + k, wt.data() + k * ld);
                else std::fill(wt.begin() + long(k * ld), wt.begin() + long((k + 1) * ld), 0.0f);
            }
            for (size_t t0 = 0; t0 < tokens; t0 += 4) {
                float out[4][4];
#ifdef RABBIT_X86
                if (avx512) {
                    tile_avx512(wt.data(), xp.data() + t0 * ld, ld, ld, out);
                } else {
                    float o2[4][2];
                    tile_avx2(wt.data(), xp.data() + t0 * ld, ld, ld, o2);
                    for (int t = 0; t < 4; ++t)
                        for (int r = 0; r < 2; ++r) out[t][r] = o2[t][r];
                }
#else
                (void)out;
#endif
                for (size_t t = t0; t < std::min(tokens, t0 + 4); ++t)
                    for (size_t k = 0; k < nr; ++k) y[t * ldy + r0 + k] = out[t - t0][k] + (bias ? bias[r0 + k] : 0.0f);
            }
        }
    });
}

#ifdef RABBIT_X86
// Prefill of bf16 weights on processors with AVX512_BF16: activations rounded to bf16 (as a
// bf16 model computes), weights read in place, products summed in f32.
void matmul_tiled_bf16(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                       size_t ldy) {
    const size_t rows = size_t(w.rows), cols = size_t(w.cols);
    const size_t ld = round_up(cols, 32), tpad = round_up(tokens, 4);
    const size_t full = cols / 32 * 32;
    const __mmask32 wtail = cols % 32 ? __mmask32((1u << (cols % 32)) - 1) : __mmask32(0xffffffffu);
    std::vector<uint16_t> xb(tpad * ld, 0);
    for (size_t t = 0; t < tokens; ++t) to_bf16_avx512(x + t * cols, xb.data() + t * ld, cols);
    const auto* base = static_cast<const uint16_t*>(w.data);
    const std::vector<uint16_t> zeros(ld, 0);
    const size_t blocks = (rows + 3) / 4;
    pool.parallel_for(blocks, [&](size_t b0, size_t b1) {
        for (size_t blk = b0; blk < b1; ++blk) {
            const size_t r0 = blk * 4, nr = std::min<size_t>(4, rows - r0);
            const uint16_t* wr[4];
            for (size_t k = 0; k < 4; ++k) wr[k] = k < nr ? base + (r0 + k) * cols : zeros.data();
            for (size_t t0 = 0; t0 < tokens; t0 += 4) {
                float out[4][4];
                tile_bf16(wr, xb.data() + t0 * ld, ld, ld, full, wtail, out);
                for (size_t t = t0; t < std::min(tokens, t0 + 4); ++t)
                    for (size_t k = 0; k < nr; ++k) y[t * ldy + r0 + k] = out[t - t0][k] + (bias ? bias[r0 + k] : 0.0f);
            }
        }
    });
}
#endif

// ---- attention's products --------------------------------------------------------------------

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
#endif

} // namespace

void attention_scores(const float* q, const float* k_blocks, size_t head_dim, size_t first, size_t end, float scale,
                      float* scores) {
    if (first >= end) return;
    const size_t b0 = first / B, b1 = (end + B - 1) / B;
#ifdef RABBIT_X86
    if (g_isa >= Isa::avx512) return scores_avx512(q, k_blocks, head_dim, b0, b1, scale, scores);
    if (g_isa == Isa::avx2) return scores_avx2(q, k_blocks, head_dim, b0, b1, scale, scores);
#endif
    scores_portable(q, k_blocks, head_dim, b0, b1, scale, scores);
}

void attention_values(const float* p, const float* v, size_t head_dim, size_t first, size_t end, float* out) {
#ifdef RABBIT_X86
    if (g_isa >= Isa::avx512) {
        switch (head_dim) {
        case 32: return values_avx512<2>(p, v, first, end, out);
        case 64: return values_avx512<4>(p, v, first, end, out);
        case 80: return values_avx512<5>(p, v, first, end, out);
        case 96: return values_avx512<6>(p, v, first, end, out);
        case 128: return values_avx512<8>(p, v, first, end, out);
        case 256: return values_avx512<16>(p, v, first, end, out);
        default: break;
        }
    }
    if (g_isa >= Isa::avx2) {
        switch (head_dim) {
        case 32: return values_avx2<4>(p, v, first, end, out);
        case 64: return values_avx2<8>(p, v, first, end, out);
        case 96: return values_avx2<12>(p, v, first, end, out);
        case 128: return values_avx2<16>(p, v, first, end, out);
        default: break;
        }
    }
#endif
    values_portable(p, v, head_dim, first, end, out);
}

Isa cpu_isa() { return g_isa; }

const char* isa_name(Isa isa) {
    switch (isa) {
    case Isa::portable: return "portable";
    case Isa::avx2: return "AVX2";
    case Isa::avx512: return "AVX-512";
    case Isa::avx512bf16: return "AVX-512 BF16";
    }
    return "?";
}

bool matmul_rounds_activations(const Matrix& w, size_t) {
    return w.dtype == DType::bf16 && g_isa == Isa::avx512bf16;
}

float dot_f32(const float* a, const float* b, size_t n) {
#ifdef RABBIT_X86
    if (g_isa >= Isa::avx512) return dot_avx512<DType::f32>(a, b, n);
    if (g_isa == Isa::avx2) return dot_avx2<DType::f32>(a, b, n);
#endif
    return dot_f32_portable(a, b, n);
}

void widen_row(const Matrix& w, uint64_t r, float* out) {
    const size_t n = size_t(w.cols);
    const auto* row = static_cast<const uint8_t*>(w.data) + r * w.cols * dtype_size(w.dtype);
    if (w.dtype == DType::f32) {
        std::memcpy(out, row, n * 4);
        return;
    }
#ifdef RABBIT_X86
    if (g_isa >= Isa::avx2) return widen_avx2(row, w.dtype, out, n);
#endif
    convert_elements(row, w.dtype, out, DType::f32, n);
}

void matmul(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y, size_t ldy) {
    if (ldy == 0) ldy = size_t(w.rows);
    RABBIT_CHECK(is_weight_dtype(w.dtype), "matmul on a non-weight dtype");
    const size_t rows = size_t(w.rows);
#ifdef RABBIT_X86
    if (tokens == 1 && matmul_rounds_activations(w, tokens)) {
        const size_t cols = size_t(w.cols), full = cols / 32 * 32;
        const __mmask32 tail = cols % 32 ? __mmask32((1u << (cols % 32)) - 1) : __mmask32(0);
        thread_local std::vector<uint16_t> xb;
        xb.resize(round_up(cols, 32));
        to_bf16_avx512(x, xb.data(), cols);
        const auto* base = static_cast<const uint16_t*>(w.data);
        const uint16_t* xp = xb.data();
        pool.parallel_for((rows + 3) / 4, [&](size_t b, size_t e) {
            for (size_t blk = b; blk < e; ++blk) {
                const size_t r0 = blk * 4;
                float out[4];
                if (r0 + 4 <= rows) {
                    dot4_bf16(base + r0 * cols, cols, xp, full, tail, out);
                } else { // the last rows: padded with copies of the first row, results dropped
                    const uint16_t* rows4[4];
                    std::vector<uint16_t> pad(4 * cols);
                    for (size_t k = 0; k < 4; ++k) {
                        rows4[k] = base + std::min(r0 + k, rows - 1) * cols;
                        std::memcpy(pad.data() + k * cols, rows4[k], cols * 2);
                    }
                    dot4_bf16(pad.data(), cols, xp, full, tail, out);
                }
                for (size_t k = 0; k < 4 && r0 + k < rows; ++k) y[r0 + k] = out[k] + (bias ? bias[r0 + k] : 0.0f);
            }
        }, 16);
        return;
    }
    if (tokens == 1 && g_isa >= Isa::avx512) {
        // Decode: reading the weights is the cost; each thread streams its own rows, four at a time.
        const size_t stride = size_t(w.cols) * dtype_size(w.dtype);
        const auto* base = static_cast<const uint8_t*>(w.data);
        pool.parallel_for((rows + 3) / 4, [&](size_t b, size_t e) {
            for (size_t blk = b; blk < e; ++blk) {
                const size_t r0 = blk * 4;
                if (r0 + 4 > rows) { // the last rows, one by one
                    for (size_t r = r0; r < rows; ++r) y[r] = dot_row(w, r, x) + (bias ? bias[r] : 0.0f);
                    continue;
                }
                float out[4];
                const void* p = base + r0 * stride;
                if (w.dtype == DType::bf16) dot4_avx512<DType::bf16>(p, stride, x, size_t(w.cols), out);
                else if (w.dtype == DType::f16) dot4_avx512<DType::f16>(p, stride, x, size_t(w.cols), out);
                else dot4_avx512<DType::f32>(p, stride, x, size_t(w.cols), out);
                for (size_t k = 0; k < 4; ++k) y[r0 + k] = out[k] + (bias ? bias[r0 + k] : 0.0f);
            }
        }, 16);
        return;
    }
#endif
    if (tokens == 1 || g_isa == Isa::portable) {
        // Decode: reading the weights is the cost; each thread streams its own rows. (The
        // portable build does prefill this way too.)
        pool.parallel_for(rows, [&](size_t b, size_t e) {
            for (size_t t = 0; t < tokens; ++t)
                for (size_t r = b; r < e; ++r)
                    y[t * ldy + r] = dot_row(w, r, x + t * size_t(w.cols)) + (bias ? bias[r] : 0.0f);
        }, 64);
        return;
    }
#ifdef RABBIT_X86
    if (matmul_rounds_activations(w, tokens)) return matmul_tiled_bf16(pool, x, tokens, w, bias, y, ldy);
#endif
    matmul_tiled_f32(pool, x, tokens, w, bias, y, ldy);
}

void rmsnorm(const float* x, const float* weight, float eps, size_t n, float* y) {
    // As the reference: the mean of squares in f32, then x * rsqrt(mean + eps) * weight.
    const float ss = dot_f32(x, x, n);
    const float inv = 1.0f / std::sqrt(ss / float(n) + eps);
    for (size_t i = 0; i < n; ++i) y[i] = weight[i] * (x[i] * inv);
}

void swiglu(ThreadPool& pool, const float* gate_up, size_t tokens, size_t inter, float* out) {
    // Blocks of a token's row, so that the inner loops run over contiguous elements.
    const size_t chunk = 1024, per_row = (inter + chunk - 1) / chunk;
    pool.parallel_for(tokens * per_row, [&](size_t b, size_t e) {
        for (size_t k = b; k < e; ++k) {
            const size_t t = k / per_row, i0 = k % per_row * chunk, n = std::min(chunk, inter - i0);
            const float* g = gate_up + t * 2 * inter + i0;
            const float* u = g + inter;
            float* o = out + t * inter + i0;
#ifdef RABBIT_X86
            if (g_isa >= Isa::avx512) {
                swiglu_avx512(g, u, n, o);
                continue;
            }
            if (g_isa == Isa::avx2) {
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
    if (g_isa >= Isa::avx512) sum = exp_sub_sum_avx512(x, n, max);
    else if (g_isa == Isa::avx2) sum = exp_sub_sum_avx2(x, n, max);
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
