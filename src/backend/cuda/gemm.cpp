// SPDX-License-Identifier: Apache-2.0
#include "backend/cuda/gemm.h"

#include "backend/cuda/check.h"
#include "backend/cuda/memory.h"
#include "common/error.h"
#include "engine/memory_plan.h"

#include <algorithm>
#include <string>

namespace rabbit {

namespace {

// The measurement's scratch buffer: the operands in its first half (the weights, then x, from
// the start; y from a quarter on), the workspace cuBLAS is given in its second half.
constexpr uint64_t k_scratch_bytes = 1ull << 20;
constexpr uint64_t k_scratch_y = k_scratch_bytes / 4;
constexpr uint64_t k_scratch_workspace = k_scratch_bytes / 2;

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

WType wtype_of(DType t) {
    switch (t) {
    case DType::f32: return WType::f32;
    case DType::f16: return WType::f16;
    case DType::bf16: return WType::bf16;
    case DType::q8_0: return WType::q8_0;
    case DType::q4_0: return WType::q4_0;
    case DType::q4_1: return WType::q4_1;
    case DType::q5_0: return WType::q5_0;
    case DType::q5_1: return WType::q5_1;
    case DType::q2_k: return WType::q2_k;
    case DType::q3_k: return WType::q3_k;
    case DType::q4_k: return WType::q4_k;
    case DType::q5_k: return WType::q5_k;
    case DType::q6_k: return WType::q6_k;
    default: break;
    }
    RABBIT_CHECK(false, std::string("no kernel weight type for ") + dtype_name(t));
    return WType::f32;
}

void weight_product(cublasHandle_t blas, cudaStream_t stream, const Matrix& w, const void* x, Elem x_type,
                    size_t tokens, float* y, size_t ldy, Workspace workspace) {
    const WType wt = wtype_of(w.dtype);
    GemmParams g;
    g.w = w.data;
    g.w_type = x_type;
    g.rows = int64_t(w.rows);
    g.cols = int64_t(w.cols);
    g.x = x;
    g.x_type = x_type;
    g.tokens = int64_t(tokens);
    g.y = y;
    g.ldy = int64_t(ldy);
    const WType act_w = x_type == Elem::f32 ? WType::f32 : x_type == Elem::f16 ? WType::f16 : WType::bf16;
    if (wt == act_w) return gemm(blas, g); // the weights as cuBLAS reads them
    if (wtype_is_quant(wt) && tokens <= size_t(k_matvec_max_tokens)) {
        QuantMatvecParams q;
        q.w = w.data;
        q.w_type = wt;
        q.rows = int64_t(w.rows);
        q.cols = int64_t(w.cols);
        q.x = x;
        q.x_type = x_type;
        q.tokens = int(tokens);
        q.y = y;
        q.ldy = int64_t(ldy);
        RABBIT_CUDA_CHECK(launch_quant_matvec(q, stream));
        return;
    }
    // Tiles of as many rows as the workspace holds in the compute type.
    const uint64_t tile = workspace.bytes / (w.cols * elem_size(x_type));
    RABBIT_CHECK(tile > 0 && workspace.data, "the dequantization workspace holds no row of the matrix");
    for (uint64_t r0 = 0; r0 < w.rows; r0 += tile) {
        const uint64_t n = std::min<uint64_t>(tile, w.rows - r0);
        DequantParams d;
        d.w = w.row(r0);
        d.w_type = wt;
        d.cols = int64_t(w.cols);
        d.rows = int64_t(n);
        d.out = workspace.data;
        d.out_type = x_type;
        d.ldo = int64_t(w.cols);
        RABBIT_CUDA_CHECK(launch_dequant(d, stream));
        g.w = workspace.data;
        g.rows = int64_t(n);
        g.y = y + r0;
        gemm(blas, g); // on the same stream: the next tile's dequantization waits for this product
    }
}

uint64_t cublas_overhead(cublasHandle_t blas, cudaStream_t stream, Elem type, uint64_t free_before) {
    const size_t e = elem_size(type);
    uint64_t used_by_scratch = 0;
    {
        DeviceBuffer scratch(k_scratch_bytes);
        used_by_scratch = device_pages(scratch.bytes());
        uint8_t* base = scratch.as<uint8_t>();
        RABBIT_CUDA_CHECK(cudaMemsetAsync(base, 0, scratch.bytes(), stream));
        RABBIT_CUBLAS_CHECK(cublasSetWorkspace(blas, base + k_scratch_workspace, k_scratch_bytes - k_scratch_workspace));
        for (int64_t tokens : {int64_t(1), int64_t(16)}) {
            GemmParams g;
            g.w = base;
            g.w_type = type;
            g.rows = 64;
            g.cols = 64;
            g.x = base + 64 * 64 * e;
            g.x_type = type;
            g.tokens = tokens;
            g.y = reinterpret_cast<float*>(base + k_scratch_y);
            g.ldy = 64;
            gemm(blas, g);
        }
        RABBIT_CUDA_CHECK(cudaStreamSynchronize(stream));
        size_t free_now = 0, total = 0;
        RABBIT_CUDA_CHECK(cudaMemGetInfo(&free_now, &total));
        RABBIT_CUBLAS_CHECK(cublasSetWorkspace(blas, nullptr, 0)); // before the scratch goes
        const uint64_t lost = free_before > free_now ? free_before - free_now : 0;
        return lost > used_by_scratch ? lost - used_by_scratch : 0;
    }
}

uint64_t measure_cublas_overhead(Elem type) {
    size_t free_before = 0, total = 0;
    RABBIT_CUDA_CHECK(cudaMemGetInfo(&free_before, &total));
    cudaStream_t stream = nullptr;
    cublasHandle_t blas = nullptr;
    RABBIT_CUDA_CHECK(cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking));
    const cublasStatus_t made = cublasCreate(&blas);
    if (made != CUBLAS_STATUS_SUCCESS) cudaStreamDestroy(stream);
    RABBIT_CUBLAS_CHECK(made);
    uint64_t bytes = 0;
    try {
        RABBIT_CUBLAS_CHECK(cublasSetStream(blas, stream));
        bytes = cublas_overhead(blas, stream, type, free_before);
    } catch (...) {
        cublasDestroy(blas);
        cudaStreamDestroy(stream);
        throw;
    }
    cublasDestroy(blas);
    cudaStreamDestroy(stream);
    return bytes;
}

} // namespace rabbit
