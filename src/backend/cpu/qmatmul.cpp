// SPDX-License-Identifier: Apache-2.0
// matmul for quantized weights: the activations quantized to 8-bit blocks once, then each
// thread streams its own weight rows, each read once and dotted with every token's blocks,
// a register tile of tokens at a time (decode is the tile of one token).
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
    // Blocks of rows big enough that handing them out costs little next to reading them.
    const size_t grain = std::max<size_t>(4, 16384 / std::max<size_t>(1, size_t(w.row_bytes()) * tokens));
    pool.parallel_for(rows, [&](size_t r0, size_t r1) {
        float out[k_qtile_vnni];
        for (size_t r = r0; r < r1; ++r) {
            const uint8_t* row = w.row(r);
            const float add = bias ? bias[r] : 0.0f;
            for (size_t t0 = 0; t0 < tokens; t0 += tile) {
                const size_t nt = std::min(tile, tokens - t0);
                dot(t, row, cols, xqp + t0 * xs, xs, nt, out);
                for (size_t j = 0; j < nt; ++j) y[(t0 + j) * ldy + r] = out[j] + add;
            }
        }
    }, grain);
}

} // namespace rabbit::cpu
