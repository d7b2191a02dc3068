// SPDX-License-Identifier: Apache-2.0
// cuBLAS on the emulated device. cublasGemmEx is checked as cuBLAS checks it (dimensions,
// leading dimensions, the type combinations it supports with each compute type, device
// pointers) and then queued on the handle's stream, where OpenBLAS computes it: the f16 and
// bf16 operands widened to f32, column major, with the same transposes and leading
// dimensions, so an argument mistake gives wrong numbers rather than the right ones. A handle
// takes device memory as cuBLAS's does (its state; the kernels' code on a device's first GEMM;
// a default workspace unless one was set), so that a plan which forgets them overruns its budget.
#include "include/cublas_v2.h"
#include "include/cuda_bf16.h"
#include "include/cuda_fp16.h"
#include "internal.h"

#include <cblas.h>

#include <algorithm>
#include <cstdio>
#include <mutex>
#include <set>
#include <tuple>
#include <vector>

struct cublasContext {
    int device = 0;
    cudaStream_t stream = nullptr;
    cublasMath_t math = CUBLAS_DEFAULT_MATH;
    void* workspace = nullptr;
    size_t workspace_bytes = 0;
    bool user_workspace = false;
    uint64_t charged = 0; // device bytes this handle holds
};

namespace {

constexpr uint64_t k_handle_bytes = 2ull << 20;        // a handle's state on the device
constexpr uint64_t k_gemm_code_bytes = 8ull << 20;     // the GEMM kernels, loaded on a device's first GEMM
constexpr uint64_t k_default_workspace_sm90 = 32ull << 20; // cuBLAS's own workspace, when none is set
constexpr uint64_t k_default_workspace = 4ull << 20;

std::mutex g_mutex;
std::set<int> g_code_loaded;   // devices whose first GEMM has loaded the kernels
std::set<const cublasContext*> g_handles;

bool valid(cublasHandle_t h) {
    std::lock_guard<std::mutex> lock(g_mutex);
    return h && g_handles.count(h) != 0;
}

size_t type_size(cudaDataType_t t) {
    switch (t) {
    case CUDA_R_32F: return 4;
    case CUDA_R_16F: case CUDA_R_16BF: return 2;
    case CUDA_R_64F: return 8;
    case CUDA_R_8I: return 1;
    case CUDA_R_32I: return 4;
    }
    return 0;
}

// The combinations cublasGemmEx takes with 32-bit float compute (cuBLAS's table), A and B of
// one type.
bool supported(cudaDataType_t a, cudaDataType_t b, cudaDataType_t c, cublasComputeType_t compute) {
    if (a != b) return false;
    switch (compute) {
    case CUBLAS_COMPUTE_32F:
    case CUBLAS_COMPUTE_32F_PEDANTIC:
        return (a == CUDA_R_32F && c == CUDA_R_32F) || (a == CUDA_R_16F && (c == CUDA_R_16F || c == CUDA_R_32F)) ||
               (a == CUDA_R_16BF && (c == CUDA_R_16BF || c == CUDA_R_32F)) || (a == CUDA_R_8I && c == CUDA_R_32F);
    case CUBLAS_COMPUTE_32F_FAST_16F:
    case CUBLAS_COMPUTE_32F_FAST_16BF:
    case CUBLAS_COMPUTE_32F_FAST_TF32:
        return a == CUDA_R_32F && c == CUDA_R_32F;
    case CUBLAS_COMPUTE_16F:
    case CUBLAS_COMPUTE_16F_PEDANTIC:
        return a == CUDA_R_16F && c == CUDA_R_16F;
    }
    return false;
}

void store(void* p, cudaDataType_t t, size_t i, float v) {
    switch (t) {
    case CUDA_R_32F: static_cast<float*>(p)[i] = v; break;
    case CUDA_R_16F: static_cast<unsigned short*>(p)[i] = cuda_emu::float_to_half_bits(v); break;
    case CUDA_R_16BF: static_cast<unsigned short*>(p)[i] = cuda_emu::float_to_bf16_bits(v); break;
    default: break;
    }
}

// Rows [r0, r1), columns [c0, c1) of a column-major operand with leading dimension ld,
// widened to f32 into out (dense: leading dimension r1 - r0). Only what the product reads is
// read.
template <typename T, typename F>
void widen_as(float* out, const void* p, int r0, int r1, int c0, int c1, int ld, F f) {
    const T* src = static_cast<const T*>(p);
    const size_t rows = size_t(r1 - r0);
    for (int c = c0; c < c1; ++c) {
        const T* col = src + size_t(c) * size_t(ld);
        float* dst = out + size_t(c - c0) * rows;
        for (int r = r0; r < r1; ++r) dst[r - r0] = f(col[r]);
    }
}

void widen(std::vector<float>& out, const void* p, cudaDataType_t t, int r0, int r1, int c0, int c1, int ld) {
    out.resize(size_t(r1 - r0) * size_t(c1 - c0)); // the buffers are kept: no page faults for every GEMM
    float* o = out.data();
    switch (t) {
    case CUDA_R_32F: return widen_as<float>(o, p, r0, r1, c0, c1, ld, [](float v) { return v; });
    case CUDA_R_16F:
        return widen_as<unsigned short>(o, p, r0, r1, c0, c1, ld, [](unsigned short v) { return cuda_emu::half_bits_to_float(v); });
    case CUDA_R_16BF:
        return widen_as<unsigned short>(o, p, r0, r1, c0, c1, ld, [](unsigned short v) { return cuda_emu::bf16_bits_to_float(v); });
    case CUDA_R_8I: return widen_as<int8_t>(o, p, r0, r1, c0, c1, ld, [](int8_t v) { return float(v); });
    default: return;
    }
}

// The bytes a column-major rows x cols operand with leading dimension ld spans.
size_t span(int rows, int cols, int ld, size_t elem) {
    if (rows == 0 || cols == 0) return 0;
    return (size_t(cols - 1) * size_t(ld) + size_t(rows)) * elem;
}

} // namespace

cublasStatus_t cublasCreate(cublasHandle_t* handle) {
    if (!handle) return CUBLAS_STATUS_INVALID_VALUE;
    static std::once_flag once;
    std::call_once(once, [] { openblas_set_num_threads(1); }); // each stream's thread computes its own GEMMs
    int device = 0;
    if (cudaGetDevice(&device) != cudaSuccess || cuda_emu::sticky_error() != cudaSuccess) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (!cuda_emu::ensure_context(device) || !cuda_emu::charge_device(device, k_handle_bytes)) return CUBLAS_STATUS_ALLOC_FAILED;
    auto* h = new cublasContext;
    h->device = device;
    h->charged = k_handle_bytes;
    std::lock_guard<std::mutex> lock(g_mutex);
    g_handles.insert(h);
    *handle = h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t handle) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (auto s = cuda_emu::stream_of(handle->stream)) s->wait_idle(); // its GEMMs finish first
    cuda_emu::uncharge_device(handle->device, handle->charged);
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        g_handles.erase(handle);
    }
    if (!handle->user_workspace) std::free(handle->workspace);
    delete handle;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t handle, cudaStream_t stream) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (stream && !cuda_emu::stream_of(stream)) return CUBLAS_STATUS_INVALID_VALUE;
    handle->stream = stream;
    // As cuBLAS does: a new stream goes back to the default workspace.
    if (handle->user_workspace) {
        handle->user_workspace = false;
        handle->workspace = nullptr;
        handle->workspace_bytes = 0;
    }
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGetStream(cublasHandle_t handle, cudaStream_t* stream) {
    if (!valid(handle) || !stream) return CUBLAS_STATUS_NOT_INITIALIZED;
    *stream = handle->stream;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t handle, cublasMath_t mode) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (mode != CUBLAS_DEFAULT_MATH && mode != CUBLAS_TENSOR_OP_MATH && mode != CUBLAS_PEDANTIC_MATH &&
        mode != CUBLAS_TF32_TENSOR_OP_MATH)
        return CUBLAS_STATUS_INVALID_VALUE;
    handle->math = mode;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetWorkspace(cublasHandle_t handle, void* workspace, size_t bytes) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (bytes > 0 && (!workspace || !cuda_emu::device_visible(workspace, bytes))) return CUBLAS_STATUS_INVALID_VALUE;
    if (reinterpret_cast<uintptr_t>(workspace) % 256 != 0) return CUBLAS_STATUS_INVALID_VALUE;
    handle->workspace = workspace;
    handle->workspace_bytes = bytes;
    handle->user_workspace = true;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasGemmEx(cublasHandle_t handle, cublasOperation_t transa, cublasOperation_t transb, int m, int n,
                            int k, const void* alpha, const void* A, cudaDataType_t Atype, int lda, const void* B,
                            cudaDataType_t Btype, int ldb, const void* beta, void* C, cudaDataType_t Ctype, int ldc,
                            cublasComputeType_t compute, cublasGemmAlgo_t algo) {
    if (!valid(handle)) return CUBLAS_STATUS_NOT_INITIALIZED;
    if (cuda_emu::sticky_error() != cudaSuccess) return CUBLAS_STATUS_EXECUTION_FAILED;
    (void)algo;
    if (transa > CUBLAS_OP_C || transb > CUBLAS_OP_C || m < 0 || n < 0 || k < 0 || !alpha || !beta)
        return CUBLAS_STATUS_INVALID_VALUE;
    // op(A) is m x k, op(B) k x n, C m x n; A as stored is m x k (N) or k x m (T).
    const int a_rows = transa == CUBLAS_OP_N ? m : k, a_cols = transa == CUBLAS_OP_N ? k : m;
    const int b_rows = transb == CUBLAS_OP_N ? k : n, b_cols = transb == CUBLAS_OP_N ? n : k;
    if (lda < std::max(1, a_rows) || ldb < std::max(1, b_rows) || ldc < std::max(1, m)) {
        std::fprintf(stderr, "cuda-emu: cublasGemmEx: leading dimensions lda %d, ldb %d, ldc %d too small for op(A) %dx%d "
                     "(stored %dx%d), op(B) %dx%d (stored %dx%d), C %dx%d\n", lda, ldb, ldc, m, k, a_rows, a_cols, k, n,
                     b_rows, b_cols, m, n);
        return CUBLAS_STATUS_INVALID_VALUE;
    }
    if (!supported(Atype, Btype, Ctype, compute)) {
        std::fprintf(stderr, "cuda-emu: cublasGemmEx: types A %d, B %d, C %d with compute type %d are not supported\n",
                     int(Atype), int(Btype), int(Ctype), int(compute));
        return CUBLAS_STATUS_NOT_SUPPORTED;
    }
    if (m == 0 || n == 0) return CUBLAS_STATUS_SUCCESS;
    const size_t a_bytes = span(a_rows, a_cols, lda, type_size(Atype)), b_bytes = span(b_rows, b_cols, ldb, type_size(Btype)),
                 c_bytes = span(m, n, ldc, type_size(Ctype));
    for (const auto& [p, bytes, name] : {std::tuple<const void*, size_t, const char*>{A, a_bytes, "A"},
                                         std::tuple<const void*, size_t, const char*>{B, b_bytes, "B"},
                                         std::tuple<const void*, size_t, const char*>{C, c_bytes, "C"}}) {
        if (bytes == 0) continue;
        if (!p || !cuda_emu::device_visible(p, bytes)) {
            cuda_emu::raise_fault(cudaErrorIllegalAddress,
                                  std::string("cublasGemmEx: operand ") + name + " at " +
                                      std::to_string(reinterpret_cast<uintptr_t>(p)) + " (" + std::to_string(bytes) +
                                      " bytes) is not inside one device allocation");
            return CUBLAS_STATUS_EXECUTION_FAILED;
        }
    }
    const auto stream = cuda_emu::stream_of(handle->stream);
    if (!stream) return CUBLAS_STATUS_INVALID_VALUE;
    // Device memory a real cuBLAS takes at its first GEMM: the kernels' code (once per device),
    // and its default workspace when none was set.
    {
        std::lock_guard<std::mutex> lock(g_mutex);
        if (!g_code_loaded.count(handle->device)) {
            if (!cuda_emu::charge_device(handle->device, k_gemm_code_bytes)) return CUBLAS_STATUS_ALLOC_FAILED;
            g_code_loaded.insert(handle->device);
        }
    }
    if (!handle->user_workspace && !handle->workspace) {
        const uint64_t ws = cuda_emu::current_settings().arch >= 90 ? k_default_workspace_sm90 : k_default_workspace;
        if (!cuda_emu::charge_device(handle->device, ws)) return CUBLAS_STATUS_ALLOC_FAILED;
        handle->charged += ws;
        handle->workspace = std::malloc(1); // stands for it; never read
        handle->workspace_bytes = ws;
    }
    const float al = *static_cast<const float*>(alpha), be = *static_cast<const float*>(beta);
    cuda_emu::submit(stream, cuda_emu::OpKind::kernel, [=] {
        // The operands are read when the GEMM runs on its stream, not when it was queued. C
        // goes in blocks of rows, so that a wide op(A) (lm_head) is never widened whole; each
        // block hands OpenBLAS the transposes as given.
        thread_local std::vector<float> a, b, c;
        widen(b, B, Btype, 0, b_rows, 0, b_cols, ldb);
        const int block = int(std::max<int64_t>(1, std::min<int64_t>(m, (int64_t(4) << 20) / std::max(1, k))));
        for (int i0 = 0; i0 < m; i0 += block) {
            const int i1 = std::min(m, i0 + block), rows = i1 - i0;
            if (be != 0.0f) {
                widen(c, C, Ctype, i0, i1, 0, n, ldc);
            } else {
                c.assign(size_t(rows) * n, 0.0f);
            }
            if (k > 0) {
                // op(A) rows [i0, i1): stored columns [i0, i1) when transposed, else stored rows.
                if (transa == CUBLAS_OP_N) {
                    widen(a, A, Atype, i0, i1, 0, k, lda);
                } else {
                    widen(a, A, Atype, 0, k, i0, i1, lda);
                }
                cblas_sgemm(CblasColMajor, transa == CUBLAS_OP_N ? CblasNoTrans : CblasTrans,
                            transb == CUBLAS_OP_N ? CblasNoTrans : CblasTrans, rows, n, k, al, a.data(),
                            transa == CUBLAS_OP_N ? rows : k, b.data(), b_rows, be, c.data(), rows);
            } else {
                for (float& v : c) v *= be;
            }
            for (int j = 0; j < n; ++j)
                for (int i = i0; i < i1; ++i)
                    store(C, Ctype, size_t(j) * size_t(ldc) + size_t(i), c[size_t(j) * rows + (i - i0)]);
        }
        cuda_emu::check_guards("cublasGemmEx");
    });
    return CUBLAS_STATUS_SUCCESS;
}

const char* cublasGetStatusName(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "CUBLAS_STATUS_NOT_INITIALIZED";
    case CUBLAS_STATUS_ALLOC_FAILED: return "CUBLAS_STATUS_ALLOC_FAILED";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    case CUBLAS_STATUS_ARCH_MISMATCH: return "CUBLAS_STATUS_ARCH_MISMATCH";
    case CUBLAS_STATUS_MAPPING_ERROR: return "CUBLAS_STATUS_MAPPING_ERROR";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "CUBLAS_STATUS_EXECUTION_FAILED";
    case CUBLAS_STATUS_INTERNAL_ERROR: return "CUBLAS_STATUS_INTERNAL_ERROR";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "CUBLAS_STATUS_NOT_SUPPORTED";
    }
    return "CUBLAS_STATUS_UNKNOWN";
}

const char* cublasGetStatusString(cublasStatus_t s) {
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "success";
    case CUBLAS_STATUS_NOT_INITIALIZED: return "the library was not initialized";
    case CUBLAS_STATUS_ALLOC_FAILED: return "the resource allocation failed";
    case CUBLAS_STATUS_INVALID_VALUE: return "an invalid numeric value was used as an argument";
    case CUBLAS_STATUS_NOT_SUPPORTED: return "the functionality requested is not supported";
    case CUBLAS_STATUS_EXECUTION_FAILED: return "the GPU program failed to execute";
    default: return "an emulated cuBLAS error";
    }
}
