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
    auto* dot = path == QPath::vnni ? qdot_vnni : path == QPath::avx2 ? qdot_avx2 : qdot_portable;
    const size_t tile = path == QPath::vnni ? k_qtile_vnni : k_qtile_avx2;
    // Each thread takes blocks of rows and goes through them in parts of up to 64 KiB of
    // weights, which stay in cache while every tile of tokens passes over them (a tile's
    // activation blocks stay in L1 while the part's rows pass).
    const size_t part = std::max<size_t>(4, 65536 / size_t(w.row_bytes()));
    pool.parallel_for(rows, [&](size_t b, size_t e) {
        float out[k_qtile_vnni];
        for (size_t r0 = b; r0 < e; r0 += part) {
            const size_t r1 = std::min(e, r0 + part);
            for (size_t t0 = 0; t0 < tokens; t0 += tile) {
                const size_t nt = std::min(tile, tokens - t0);
                for (size_t r = r0; r < r1; ++r) {
                    dot(t, w.row(r), cols, xqp + t0 * xs, xs, nt, out);
                    const float add = bias ? bias[r] : 0.0f;
                    for (size_t j = 0; j < nt; ++j) y[(t0 + j) * ldy + r] = out[j] + add;
                }
            }
        }
    }, 4);
}

} // namespace rabbit::cpu
