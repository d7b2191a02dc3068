// SPDX-License-Identifier: Apache-2.0
// One error path for CUDA and cuBLAS: every call is checked, and a failure becomes a rabbit
// Error naming the call and where it was made. Running out of GPU memory is the user's
// budget (exit 6); anything else is a bug or a broken device (exit 1).
#pragma once

#include <cublas_v2.h>
#include <cuda_runtime.h>

namespace rabbit {

[[noreturn]] void cuda_fail(cudaError_t e, const char* expr, const char* file, int line);
[[noreturn]] void cublas_fail(cublasStatus_t s, const char* expr, const char* file, int line);

} // namespace rabbit

#define RABBIT_CUDA_CHECK(expr)                                                       \
    do {                                                                              \
        const cudaError_t rabbit_e_ = (expr);                                         \
        if (rabbit_e_ != cudaSuccess) ::rabbit::cuda_fail(rabbit_e_, #expr, __FILE__, __LINE__); \
    } while (0)

#define RABBIT_CUBLAS_CHECK(expr)                                                     \
    do {                                                                              \
        const cublasStatus_t rabbit_s_ = (expr);                                      \
        if (rabbit_s_ != CUBLAS_STATUS_SUCCESS) ::rabbit::cublas_fail(rabbit_s_, #expr, __FILE__, __LINE__); \
    } while (0)
