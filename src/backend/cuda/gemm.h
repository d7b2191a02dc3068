// SPDX-License-Identifier: Apache-2.0
// The matrix products, on cuBLAS: y = x W^T with W row-major [rows, cols] as the split stores
// it, x in the compute type, y in f32, accumulated in f32 (never TF32).
#pragma once

#include "elem.cuh"

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

// cuBLAS's own device memory: what the current device's free memory lost since free_before
// (read before `blas` was made), once two small GEMMs of `type` (one token, and several) ran
// on `stream` with a scratch workspace, so that cuBLAS makes no default one of its own. The
// handle's state and the kernels cuBLAS loads at its first GEMMs; the scratch is not counted
// and is gone (with no workspace set) when this returns.
uint64_t cublas_overhead(cublasHandle_t blas, cudaStream_t stream, Elem type, uint64_t free_before);
// The same for a handle of its own, made on the current device and destroyed (rabbit inspect).
uint64_t measure_cublas_overhead(Elem type);

} // namespace rabbit
