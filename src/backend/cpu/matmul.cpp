// SPDX-License-Identifier: Apache-2.0
// matmul: y = x W^T with the weight read in place in its stored dtype. One token (decode):
// each thread streams its own weight rows, four at a time. Many tokens (prefill): tiles of
// weight rows x 4 tokens. bf16 weights on AVX512_BF16 multiply bf16 pairs (vdpbf16ps) with
// the activations rounded to bf16.
#include "backend/cpu/dot.h"
#include "backend/cpu/kernels.h"
#include "backend/cpu/qexact.h"
#include "backend/cpu/qkernels.h"
#include "backend/cpu/simd.h"

#include "common/error.h"
#include "common/thread_pool.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace rabbit {

namespace {

using cpu::dot_row;

size_t round_up(size_t v, size_t a) { return (v + a - 1) / a * a; }

#ifdef RABBIT_X86
using namespace simd;

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

// Decode streams each thread's rows four at a time, four streams that the hardware
// prefetcher loses at every 4 KiB page: each 64 bytes read asks for the same place in the
// next four rows (`ahead` bytes on), which is read next.
RABBIT_INLINE void prefetch_next4(const void* p, size_t ahead) {
    _mm_prefetch(static_cast<const char*>(p) + ahead, _MM_HINT_T0);
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
            for (size_t o = 0; o < 32 * dtype_size(T); o += 64) prefetch_next4(base + size_t(r) * stride + i * dtype_size(T) + o, 4 * stride);
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
    for (int t = 0; t < 4; ++t) _mm_storeu_ps(out[t], reduce4(acc[t]));
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
    for (int t = 0; t < 4; ++t) _mm_storeu_ps(out[t], reduce4(acc[t]));
}

// Decode with bf16 weights and activations: four weight rows (read in place) dotted with one
// activation row, bf16 pairs summed in f32; `tail` masks the last partial 32.
RABBIT_AVX512BF16 void dot4_bf16(const uint16_t* w, size_t cols, const uint16_t* x, size_t full, __mmask32 tail, float out[4]) {
    __m512 acc[4];
    for (auto& a : acc) a = _mm512_setzero_ps();
    size_t i = 0;
    for (; i < full; i += 32) {
        const __m512bh xv = (__m512bh)_mm512_loadu_si512(x + i);
        for (int r = 0; r < 4; ++r) {
            prefetch_next4(w + size_t(r) * cols + i, 4 * cols * 2);
            acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_loadu_si512(w + size_t(r) * cols + i), xv);
        }
    }
    if (i < cols) {
        const __m512bh xv = (__m512bh)_mm512_maskz_loadu_epi16(tail, x + i);
        for (int r = 0; r < 4; ++r)
            acc[r] = _mm512_dpbf16_ps(acc[r], (__m512bh)_mm512_maskz_loadu_epi16(tail, w + size_t(r) * cols + i), xv);
    }
    _mm_storeu_ps(out, reduce4(acc));
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

// Prefill with f32 activations: blocks of weight rows widened once into a padded tile
// buffer, multiplied with tokens four at a time.
void matmul_tiled_f32(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                      size_t ldy) {
    const size_t rows = size_t(w.rows), cols = size_t(w.cols);
    const bool avx512 = cpu_isa() >= Isa::avx512;
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

#ifdef RABBIT_X86
// Decode of bf16 weights on AVX512_BF16: the activation row rounded to bf16 once, then four
// weight rows at a time, read in place.   x [w.cols] f32, y [w.rows] f32
void decode_bf16(ThreadPool& pool, const float* x, const Matrix& w, const float* bias, float* y) {
    const size_t rows = size_t(w.rows), cols = size_t(w.cols), full = cols / 32 * 32;
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
}

// Decode on AVX-512: reading the weights is the cost; each thread streams its own rows, four
// at a time.   x [w.cols] f32, y [w.rows] f32
void decode_avx512(ThreadPool& pool, const float* x, const Matrix& w, const float* bias, float* y) {
    const size_t rows = size_t(w.rows);
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
}
#endif

// Row by row, each thread its own rows: decode without AVX-512, and every product in the
// portable build (where there is no tile to gain from).
void matmul_rows(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                 size_t ldy) {
    pool.parallel_for(size_t(w.rows), [&](size_t b, size_t e) {
        for (size_t t = 0; t < tokens; ++t)
            for (size_t r = b; r < e; ++r)
                y[t * ldy + r] = dot_row(w, r, x + t * size_t(w.cols)) + (bias ? bias[r] : 0.0f);
    }, 64);
}

} // namespace

const char* act_quant_name(ActQuant a) { return a == ActQuant::q8 ? "q8" : "f32"; }

bool matmul_rounds_activations(const Matrix& w, size_t, ActQuant aq) {
    if (is_quant_dtype(w.dtype)) return aq == ActQuant::q8;
    return w.dtype == DType::bf16 && cpu_isa() == Isa::avx512bf16;
}

void matmul(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y, size_t ldy,
            ActQuant aq) {
    if (ldy == 0) ldy = size_t(w.rows);
    RABBIT_CHECK(is_weight_dtype(w.dtype), "matmul on a non-weight dtype");
    if (is_quant_dtype(w.dtype)) {
        if (aq == ActQuant::f32) return cpu::qmatmul_exact(pool, x, tokens, w, bias, y, ldy);
        return cpu::qmatmul(pool, x, tokens, w, bias, y, ldy, cpu::best_qpath());
    }
    const Isa isa = cpu_isa();
#ifdef RABBIT_X86
    if (tokens == 1 && matmul_rounds_activations(w, tokens)) return decode_bf16(pool, x, w, bias, y);
    if (tokens == 1 && isa >= Isa::avx512) return decode_avx512(pool, x, w, bias, y);
#endif
    if (tokens == 1 || isa == Isa::portable) return matmul_rows(pool, x, tokens, w, bias, y, ldy);
#ifdef RABBIT_X86
    if (matmul_rounds_activations(w, tokens)) return matmul_tiled_bf16(pool, x, tokens, w, bias, y, ldy);
#endif
    matmul_tiled_f32(pool, x, tokens, w, bias, y, ldy);
}

} // namespace rabbit
