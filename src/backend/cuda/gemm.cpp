// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/gemm.h"

#include "backend/cuda/check.h"
#include "common/error.h"

namespace rabbit {

namespace {

cudaDataType_t cuda_type(Elem e) {
    switch (e) {
    case Elem::f32: return CUDA_R_32F;
    case Elem::f16: return CUDA_R_16F;
    case Elem::bf16: return CUDA_R_16BF;
    }
    return CUDA_R_32F;
}

} // namespace

void gemm(cublasHandle_t blas, const GemmParams& p) {
    RABBIT_CHECK(p.w_type == p.x_type, "gemm with weights and activations of different types");
    RABBIT_CHECK(p.rows > 0 && p.cols > 0 && p.tokens > 0 && p.ldy >= p.rows && p.rows < (1ll << 31) &&
                     p.cols < (1ll << 31) && p.tokens < (1ll << 31),
                 "gemm shape out of range");
    // Column-major view: Y^T [rows, tokens] = W^T^T [rows, cols] * X^T [cols, tokens], where W
    // row-major [rows, cols] is a column-major [cols, rows] with leading dimension cols.
    const float alpha = 1.0f, beta = 0.0f;
    RABBIT_CUBLAS_CHECK(cublasGemmEx(blas, CUBLAS_OP_T, CUBLAS_OP_N, int(p.rows), int(p.tokens), int(p.cols), &alpha,
                                     p.w, cuda_type(p.w_type), int(p.cols), p.x, cuda_type(p.x_type), int(p.cols), &beta,
                                     p.y, CUDA_R_32F, int(p.ldy), CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT));
}

} // namespace rabbit
