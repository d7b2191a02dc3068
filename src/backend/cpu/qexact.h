// SPDX-License-Identifier: Apache-2.0
// The exact products of quantized weights (internal to src/backend/cpu/, and to the tests):
// f32 activations, weights dequantized four rows at a time (qdequant.cpp) to the values of
// common/quant.h's dequantize, f32 sums. ActQuant::f32, matmul's default for quantized
// weights; ActQuant::q8 is qmatmul's 8-bit activations (qkernels.h).
#pragma once

#include "backend/cpu/kernels.h"
#include "model/matrix.h"

#include <cstddef>
#include <cstdint>

namespace rabbit {

class ThreadPool;

namespace cpu {

// Whether dequant_rows has a vector path for t on this processor (else it is the scalar
// dequantize).
bool has_fast_dequant(DType t);
// nrows weight rows (rb bytes apart) of `cols` elements to f32.   y [nrows, ldy]
void dequant_rows(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, float* y, size_t ldy);

// Decode without scratch: nrows weight rows each dotted with x, dequantized in registers (the
// same values as dequant_rows; only where has_fast_dequant(t)).   x [cols], out [nrows]
void dequant_dot(DType t, const uint8_t* w, size_t rb, size_t nrows, size_t cols, const float* x, float* out);

// matmul with a quantized weight and f32 activations, on cpu_isa()'s instructions:
//   x [tokens, w.cols], bias [w.rows] or null, y [tokens, ldy] (ldy 0: w.rows)
void qmatmul_exact(ThreadPool& pool, const float* x, size_t tokens, const Matrix& w, const float* bias, float* y,
                   size_t ldy);

} // namespace cpu
} // namespace rabbit
