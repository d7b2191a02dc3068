// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/check.h"

#include "common/error.h"

#include <string>

namespace rabbit {

namespace {

std::string where(const char* expr, const char* file, int line) {
    std::string f = file;
    const size_t src = f.rfind("/src/");
    if (src != std::string::npos) f = f.substr(src + 1);
    return std::string(expr) + " at " + f + ":" + std::to_string(line);
}

} // namespace

void cuda_fail(cudaError_t e, const char* expr, const char* file, int line) {
    const std::string what = std::string(cudaGetErrorName(e)) + " (" + cudaGetErrorString(e) + ") in " + where(expr, file, line);
    if (e == cudaErrorMemoryAllocation)
        throw Error(ExitCode::resources, "out of GPU memory: " + what + "; lower --vram-budget or --ctx");
    throw Error(ExitCode::internal, "CUDA error " + what);
}

void cublas_fail(cublasStatus_t s, const char* expr, const char* file, int line) {
    const std::string what = std::string(cublasGetStatusName(s)) + " (" + cublasGetStatusString(s) + ") in " + where(expr, file, line);
    if (s == CUBLAS_STATUS_ALLOC_FAILED) throw Error(ExitCode::resources, "out of GPU memory: " + what);
    throw Error(ExitCode::internal, "cuBLAS error " + what);
}

} // namespace rabbit
