// SPDX-License-Identifier: Apache-2.0
// The exact products of quantized weights (ActQuant::f32, the default): activations stay f32,
// weights are dequantized on the fly (qdequant.cpp), and every product is an f32 sum, as
// transformers computes with the dequantized model. No matrix is dequantized whole: each
// thread takes tiles of rows, dequantizes a tile into its own scratch (sized to stay in L2),
// and runs it against every token, 4 rows x T tokens in registers (T = 4 on AVX-512, 2 on
// AVX2, 1 for decode), so a tile's dequantization is paid once per call.
#include "backend/cpu/qexact.h"
#include "backend/cpu/simd.h"

#include "common/error.h"
#include "common/thread_pool.h"

#include <algorithm>
#include <cstring>
#include <string>
#include <vector>

namespace rabbit::cpu {

namespace {

constexpr size_t k_scratch_bytes = 256 << 10; // a tile of dequantized rows: about L2's share

// 4 weight rows (ldw apart) x T tokens: out[t][r] = w_r . x_t over n elements.
template <int T>
void tile_portable(const float* w, size_t ldw, const float* const* x, size_t n, float out[][4]) {
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < 4; ++r) {
            const float* wr = w + size_t(r) * ldw;
            float s[4] = {0, 0, 0, 0};
            for (size_t i = 0; i < n; i += 4)
                for (int k = 0; k < 4; ++k) s[k] += wr[i + size_t(k)] * x[t][i + size_t(k)];
            out[t][r] = (s[0] + s[1]) + (s[2] + s[3]);
        }
}

#ifdef RABBIT_X86
using namespace simd;

// n a multiple of 16 (a quantized row is whole blocks of 32).
template <int T>
RABBIT_AVX512 void tile_avx512(const float* w, size_t ldw, const float* const* x, size_t n, float out[][4]) {
    __m512 acc[T][4];
    for (auto& a : acc)
        for (auto& v : a) v = _mm512_setzero_ps();
    for (size_t i = 0; i < n; i += 16) {
        __m512 wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = _mm512_loadu_ps(w + size_t(r) * ldw + i);
        for (int t = 0; t < T; ++t) {
            const __m512 xv = _mm512_loadu_ps(x[t] + i);
            for (int r = 0; r < 4; ++r) acc[t][r] = _mm512_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < 4; ++r) out[t][r] = _mm512_reduce_add_ps(acc[t][r]);
}

// n a multiple of 8.
template <int T>
RABBIT_AVX2 void tile_avx2(const float* w, size_t ldw, const float* const* x, size_t n, float out[][4]) {
    __m256 acc[T][4];
    for (auto& a : acc)
        for (auto& v : a) v = _mm256_setzero_ps();
    for (size_t i = 0; i < n; i += 8) {
        __m256 wv[4];
        for (int r = 0; r < 4; ++r) wv[r] = _mm256_loadu_ps(w + size_t(r) * ldw + i);
        for (int t = 0; t < T; ++t) {
            const __m256 xv = _mm256_loadu_ps(x[t] + i);
            for (int r = 0; r < 4; ++r) acc[t][r] = _mm256_fmadd_ps(wv[r], xv, acc[t][r]);
        }
    }
    for (int t = 0; t < T; ++t)
        for (int r = 0; r < 4; ++r) out[t][r] = hsum8(acc[t][r]);
}
#endif

using TileFn = void (*)(const float*, size_t, const float* const*, size_t, float[][4]);

struct Tiles {
    TileFn one, many; // a tile of 1 token, and of `width` tokens
    size_t width;
};

Tiles tiles_for(Isa isa) {
#ifdef RABBIT_X86
    if (isa >= Isa::avx512) return {tile_avx512<1>, tile_avx512<4>, 4};
    if (isa == Isa::avx2) return {tile_avx2<1>, tile_avx2<2>, 2};
#endif
    (void)isa;
    return {tile_portable<1>, tile_portable<2>, 2};
}

// The rows of a tile (a multiple of 4): as many as fit the scratch, but few enough that every
// thread gets several tiles.
size_t tile_rows(size_t rows, size_t cols, size_t threads) {
    const size_t fit = std::max<size_t>(4, k_scratch_bytes / (cols * 4) / 4 * 4);
    const size_t share = (rows + 4 * threads - 1) / (4 * threads);
    return std::max<size_t>(4, std::min(fit, (share + 3) / 4 * 4));
}

} // namespace

void qmatmul_exact(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                   size_t ldy) {
    const DType t = w.dtype;
    RABBIT_CHECK(is_quant_dtype(t), std::string("qmatmul_exact on ") + dtype_name(t));
    const size_t rows = size_t(w.rows), cols = size_t(w.cols), rb = size_t(w.row_bytes());
    if (ldy == 0) ldy = rows;
    const Tiles tiles = tiles_for(cpu_isa());
    const size_t tr = tile_rows(rows, cols, pool.size()), ntiles = (rows + tr - 1) / tr;
    const auto* base = static_cast<const uint8_t*>(w.data);
    pool.parallel_for(ntiles, [&](size_t b, size_t e) {
        thread_local std::vector<float> scratch;
        scratch.resize(tr * cols);
        float* s = scratch.data();
        for (size_t tile = b; tile < e; ++tile) {
            const size_t r0 = tile * tr, nr = std::min(tr, rows - r0);
            dequant_rows(t, base + r0 * rb, rb, nr, cols, s, cols);
            // A last tile's missing rows of its last quad: zeros, their sums dropped.
            const size_t padded = (nr + 3) / 4 * 4;
            std::fill(s + nr * cols, s + padded * cols, 0.0f);
            for (size_t q = 0; q < nr; q += 4) {
                const float* wq = s + q * cols;
                const size_t nq = std::min<size_t>(4, nr - q);
                for (size_t t0 = 0; t0 < tokens;) {
                    const size_t width = tokens - t0 >= tiles.width ? tiles.width : 1;
                    const float* xs[4];
                    for (size_t k = 0; k < width; ++k) xs[k] = x + (t0 + k) * cols;
                    float out[4][4];
                    (width == 1 ? tiles.one : tiles.many)(wq, cols, xs, cols, out);
                    for (size_t k = 0; k < width; ++k)
                        for (size_t r = 0; r < nq; ++r)
                            y[(t0 + k) * ldy + r0 + q + r] = out[k][r] + (bias ? bias[r0 + q + r] : 0.0f);
                    t0 += width;
                }
            }
        }
    });
}

} // namespace rabbit::cpu
