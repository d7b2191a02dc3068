// SPDX-License-Identifier: Apache-2.0
// The matrix products, on cuBLAS: y = x W^T with W row-major [rows, cols] as the split stores
// it, x in the compute type, y in f32, accumulated in f32 (never TF32).
#pragma once

#include "elem.cuh"
#include "quant.cuh"

#include "model/matrix.h"

#include <cublas_v2.h>

#include <cstdint>

namespace rabbit {

struct GemmParams {
    const void* w = nullptr; // [rows, cols] w_type
    Elem w_type = Elem::f32;
    int64_t rows = 0, cols = 0;
    const void* x = nullptr; // [tokens, cols] x_type (the weights' type: f32 with f32, else 16-bit)
    Elem x_type = Elem::f32;
    int64_t tokens = 0;
    float* y = nullptr;      // [tokens, ldy] f32, columns [0, rows) written
    int64_t ldy = 0;
};

void gemm(cublasHandle_t blas, const GemmParams& p);

// The kernels' type of a weight dtype (every weight dtype has one).
WType wtype_of(DType t);

// y [tokens, ldy] (columns [0, w.rows)) = x [tokens, w.cols] w^T for w of any weight type, on
// `stream` (blas's):
//   w in the compute type x_type          cuBLAS (gemm);
//   quantized, tokens <= k_matvec_max_tokens   launch_quant_matvec, on the blocks where they are;
//   otherwise (prefill, or a float type other than x_type)   tiles of rows dequantized into
//       `workspace` (x_type) and multiplied by cuBLAS, tile after tile in stream order.
// A workspace that holds no row of w is an internal error.
struct Workspace {
    void* data = nullptr;
    uint64_t bytes = 0;
};
void weight_product(cublasHandle_t blas, cudaStream_t stream, const Matrix& w, const void* x, Elem x_type,
                    size_t tokens, float* y, size_t ldy, Workspace workspace);

// cuBLAS's own device memory: what the current device's free memory lost since free_before
// (read before `blas` was made), once two small GEMMs of `type` (one token, and several) ran
// on `stream` with a scratch workspace, so that cuBLAS makes no default one of its own. The
// handle's state and the kernels cuBLAS loads at its first GEMMs; the scratch is not counted
// and is gone (with no workspace set) when this returns.
uint64_t cublas_overhead(cublasHandle_t blas, cudaStream_t stream, Elem type, uint64_t free_before);
// The same for a handle of its own, made on the current device and destroyed (rabbit inspect).
uint64_t measure_cublas_overhead(Elem type);

} // namespace rabbit
