// SPDX-License-Identifier: Apache-2.0
// The products of quantized weights (internal to src/backend/cpu/, and to the tests): the
// activations are quantized once per call to 8-bit blocks, then every weight block is dotted
// with them in integers, as llama.cpp computes. Nothing dequantizes a whole matrix.
//
// Activation blocks. For the 32-element weight types (q8_0 .. q5_1), ActQ8: d = max|x| / 127,
// q = x / d rounded to nearest even (x * (1 / d), in f32), s = d * sum(q). For the k-quants,
// ActQ8K: the same over 256 elements, with the sums of q over each 16. The quantized values
// lie in [-127, 127] (never -128, which keeps AVX2's sign trick exact).
//
// The portable path (qmatmul_portable.cpp) is the definition; the AVX2 (maddubs/madd) and
// AVX-512 VNNI (vpdpbusd/vpdpwssd on 256-bit vectors) paths compute the same integer sums
// and differ from it only in the order of f32 additions.
#pragma once

#include "model/matrix.h"

#include <cstddef>
#include <cstdint>

namespace rabbit {

class ThreadPool;

namespace cpu {

struct ActQ8 {
    float d, s;
    int8_t q[32];
};
struct ActQ8K {
    float d;
    int16_t sums[16];
    int8_t q[256];
};
static_assert(sizeof(ActQ8) == 40 && sizeof(ActQ8K) == 292);

// Whether weights of type t take ActQ8K activations (the k-quants) or ActQ8.
bool uses_q8k(DType t);
// Bytes of one token's activation blocks for `cols` columns of weight type t.
size_t act_bytes(DType t, size_t cols);
// One token's activations [cols] to blocks.   dst [act_bytes(t, cols)]
void quantize_act(DType t, const float* x, size_t cols, void* dst, bool avx2);

// The integer kernels. best_qpath() is the fastest the processor has under cpu_isa()'s cap.
enum class QPath { portable, avx2, vnni };
QPath best_qpath();
const char* qpath_name(QPath p);

// matmul for a quantized weight on a given path (must be one the processor has):
//   x [tokens, w.cols] f32, bias [w.rows] or null, y [tokens, ldy] (ldy 0: w.rows)
void qmatmul(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
             size_t ldy, QPath path);

// nrows weight rows (rb bytes apart) dotted with `nt` tokens' activation blocks (token j's
// at xq + j * xstride), on each path: y[j * ldy + r] = dot + bias[r] (bias [nrows] or null).
void qdot_portable(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
                   size_t nt, const float* bias, float* y, size_t ldy);
void qdot_avx2(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
               size_t nt, const float* bias, float* y, size_t ldy);
void qdot_vnni(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const uint8_t* xq, size_t xstride,
               size_t nt, const float* bias, float* y, size_t ldy);
// Prefill on VNNI (every quantized type: has_gemm8): 8 weight rows (w, each row_bytes apart)
// against every token; q8_0 takes its activations' quanta biased by 128 (as u8:
// bias_act_q8). Writes y[t * ldy + i] for i < 8, bias [8] or null.
bool has_gemm8(DType t);
void qgemm8_vnni(DType t, const uint8_t* w, size_t row_bytes, size_t cols, const uint8_t* xq, size_t xs, size_t tokens,
                 const float* bias, float* y, size_t ldy);
// One token's ActQ8 blocks with every quantum + 128, in place (the u8 side of vpdpbusd).
void bias_act_q8(uint8_t* xq, size_t cols);
// The most tokens one call of each vector path takes at once (its register tile).
constexpr size_t k_qtile_avx2 = 4, k_qtile_vnni = 8;

} // namespace cpu
} // namespace rabbit
