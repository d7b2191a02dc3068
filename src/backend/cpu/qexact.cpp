// SPDX-License-Identifier: Apache-2.0
// The exact products of quantized weights (ActQuant::f32, the default): activations stay f32,
// weights are dequantized on the fly (qdequant.cpp), and every product is an f32 sum, as
// transformers computes with the dequantized model. No matrix is dequantized whole: each
// thread takes its runs of rows four at a time, dequantizes the four into its own scratch
// (at most 4 x 16 KiB: it stays in L1) and runs them against every token, 4 rows x T tokens
// in registers (T = 4 on AVX-512, 2 on AVX2, 1 for decode), so a row's dequantization is paid
// once per call whatever the number of tokens. Decode (one token), where the vector
// dequantization exists, dequantizes in registers straight into the dot product instead.
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
    for (int t = 0; t < T; ++t) _mm_storeu_ps(out[t], reduce4(acc[t]));
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

} // namespace

void qmatmul_exact(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                   size_t ldy) {
    const DType t = w.dtype;
    RABBIT_CHECK(is_quant_dtype(t), std::string("qmatmul_exact on ") + dtype_name(t));
    const size_t rows = size_t(w.rows), cols = size_t(w.cols), rb = size_t(w.row_bytes());
    if (ldy == 0) ldy = rows;
    const auto* base = static_cast<const uint8_t*>(w.data);
    if (tokens == 1 && has_fast_dequant(t)) { // decode: dequantized in registers, no scratch
        pool.parallel_for(rows, [&](size_t b, size_t e) {
            float out[16];
            for (size_t r0 = b; r0 < e; r0 += 16) {
                const size_t n = std::min<size_t>(16, e - r0);
                dequant_dot(t, base + r0 * rb, rb, n, cols, x, out);
                for (size_t r = 0; r < n; ++r) y[r0 + r] = out[r] + (bias ? bias[r0 + r] : 0.0f);
            }
        }, 16);
        return;
    }
    const Tiles tiles = tiles_for(cpu_isa());
    pool.parallel_for((rows + 3) / 4, [&](size_t b, size_t e) {
        thread_local std::vector<float> scratch;
        scratch.resize(4 * cols);
        float* s = scratch.data();
        for (size_t quad = b; quad < e; ++quad) {
            const size_t r0 = 4 * quad, nr = std::min<size_t>(4, rows - r0);
            dequant_rows(t, base + r0 * rb, rb, nr, cols, s, cols);
            std::fill(s + nr * cols, s + 4 * cols, 0.0f); // a last quad's missing rows: sums dropped
            for (size_t t0 = 0; t0 < tokens;) {
                const size_t width = tokens - t0 >= tiles.width ? tiles.width : 1;
                const float* xs[4];
                for (size_t k = 0; k < width; ++k) xs[k] = x + (t0 + k) * cols;
                float out[4][4];
                (width == 1 ? tiles.one : tiles.many)(s, cols, xs, cols, out);
                for (size_t k = 0; k < width; ++k)
                    for (size_t r = 0; r < nr; ++r) y[(t0 + k) * ldy + r0 + r] = out[k][r] + (bias ? bias[r0 + r] : 0.0f);
                t0 += width;
            }
        }
    }, 4);
}

} // namespace rabbit::cpu
