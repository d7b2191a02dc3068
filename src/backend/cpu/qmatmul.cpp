// SPDX-License-Identifier: Apache-2.0
// matmul for quantized weights: the activations quantized to 8-bit blocks once, then each
// thread streams its own blocks of weight rows, each row read from memory once and dotted
// with every token's blocks, a register tile of tokens at a time (decode: a tile of one).
#include "backend/cpu/kernels.h"
#include "backend/cpu/qkernels.h"

#include "common/error.h"
#include "common/thread_pool.h"

#include <algorithm>
#include <string>
#include <vector>

namespace rabbit::cpu {

QPath best_qpath() {
    if (cpu_vnni()) return QPath::vnni;
    if (cpu_isa() >= Isa::avx2) return QPath::avx2;
    return QPath::portable;
}

const char* qpath_name(QPath p) {
    switch (p) {
    case QPath::portable: return "portable";
    case QPath::avx2: return "AVX2";
    case QPath::vnni: return "AVX-512 VNNI";
    }
    return "?";
}

namespace {

// Prefill on VNNI: groups of 8 rows through qgemm8_vnni, the rows past the last whole group
// through the row kernel.   xq: every token's activation blocks (ActQ8 or ActQ8K)
void gemm8_matmul(ThreadPool& pool, size_t tokens, const Matrix& w, const float* bias, float* y, size_t ldy,
                  uint8_t* xq, size_t xs) {
    const size_t rows = size_t(w.rows), cols = size_t(w.cols), rb = size_t(w.row_bytes()), groups = rows / 8;
    thread_local std::vector<uint8_t> biased;
    const uint8_t* xg = xq;
    if (w.dtype == DType::q8_0) { // its signed weights take the activations as u8, biased by 128
        biased.assign(xq, xq + tokens * xs);
        for (size_t k = 0; k < tokens; ++k) bias_act_q8(biased.data() + k * xs, cols);
        xg = biased.data();
    }
    pool.parallel_for(groups, [&](size_t b, size_t e) {
        for (size_t g = b; g < e; ++g)
            qgemm8_vnni(w.dtype, w.row(8 * g), rb, cols, xg, xs, tokens, bias ? bias + 8 * g : nullptr, y + 8 * g, ldy);
    });
    const size_t r0 = groups * 8;
    if (r0 < rows) qdot_vnni(w.dtype, w.row(r0), rb, rows - r0, cols, xq, xs, tokens, bias ? bias + r0 : nullptr, y + r0, ldy);
}

} // namespace

void qmatmul(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
             size_t ldy, QPath path) {
    const DType t = w.dtype;
    RABBIT_CHECK(is_quant_dtype(t), std::string("qmatmul on ") + dtype_name(t));
    const size_t rows = size_t(w.rows), cols = size_t(w.cols), xs = act_bytes(t, cols);
    if (ldy == 0) ldy = rows;
    thread_local std::vector<uint8_t> xq;
    xq.resize(tokens * xs);
    uint8_t* const xqp = xq.data();
    const bool avx2 = path != QPath::portable;
    pool.parallel_for(tokens, [&](size_t b, size_t e) {
        for (size_t k = b; k < e; ++k) quantize_act(t, x + k * cols, cols, xqp + k * xs, avx2);
    }, 16);
    if (path == QPath::vnni && has_gemm8(t) && tokens >= 2 && rows >= 8)
        return gemm8_matmul(pool, tokens, w, bias, y, ldy, xqp, xs);
    auto* dot = path == QPath::vnni ? qdot_vnni : path == QPath::avx2 ? qdot_avx2 : qdot_portable;
    const size_t tile = path == QPath::vnni ? k_qtile_vnni : k_qtile_avx2;
    // Each thread takes blocks of rows and goes through them in parts of up to 64 KiB of
    // weights, which stay in cache while every tile of tokens passes over them (a tile's
    // activation blocks stay in L1 while the part's rows pass).
    const size_t part = std::max<size_t>(4, 65536 / size_t(w.row_bytes()));
    const auto* base = static_cast<const uint8_t*>(w.data);
    const size_t rb = size_t(w.row_bytes());
    pool.parallel_for(rows, [&](size_t b, size_t e) {
        for (size_t r0 = b; r0 < e; r0 += part) {
            const size_t n = std::min(e, r0 + part) - r0;
            for (size_t t0 = 0; t0 < tokens; t0 += tile)
                dot(t, base + r0 * rb, rb, n, cols, xqp + t0 * xs, xs, std::min(tile, tokens - t0),
                    bias ? bias + r0 : nullptr, y + t0 * ldy + r0, ldy);
        }
    }, 4);
}

} // namespace rabbit::cpu
