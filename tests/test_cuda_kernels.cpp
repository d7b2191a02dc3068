// SPDX-License-Identifier: Apache-2.0
// The CUDA side's tests that are not rows of the op table (tests/test_ops.cpp, where the
// kernels are checked against their plain loops): a usable device or a visible skip, and the
// launchers' refusals of what they do not support. Tagged [gpu].
#include "gpu.h"

#include <catch2/catch.hpp>

#ifdef RABBIT_HAVE_CUDA
#include "attention.cuh"
#include "backend/cuda/gemm.h"
#include "rope.cuh"
#include "sample.cuh"

#include <cublas_v2.h>
#include <cuda_runtime.h>
#endif

using namespace rabbit;
using namespace rabbit::test;

TEST_CASE("gpu: a usable CUDA device, or a visible skip", "[gpu]") {
    if (!gpu_available()) return;
#ifdef RABBIT_HAVE_CUDA
    int dev = -1;
    REQUIRE(cudaGetDevice(&dev) == cudaSuccess);
    REQUIRE(dev >= 0);
#endif
}

#ifdef RABBIT_HAVE_CUDA

TEST_CASE("gpu: launchers refuse what they do not support", "[gpu]") {
    if (!gpu_available()) return;
    DevBuf buf(1 << 20);
    AttentionParams p;
    p.q = buf.get<float>();
    p.q_stride = 4 * 72;
    p.k_cache = p.v_cache = buf.get();
    p.cache_len = 16;
    p.out = buf.get();
    p.tokens = 1;
    p.heads = 4;
    p.kv_heads = 2;
    p.head_dim = 72; // not supported
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);
    // Exactly the head sizes attention_supports_head_dim lists launch.
    for (int d = 1; d <= 320; ++d) {
        INFO("head_dim " << d);
        p.head_dim = d;
        p.q_stride = 4 * d;
        REQUIRE((launch_attention(p, nullptr) == cudaSuccess) == attention_supports_head_dim(d));
    }
    REQUIRE(cudaDeviceSynchronize() == cudaSuccess);
    p.head_dim = 64;
    p.q_stride = 4 * 64;
    p.kv_heads = 3; // 4 % 3 != 0
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);
    p.kv_heads = 2;
    p.pos = 16; // past the cache
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);
    p.pos = 0;
    p.cache_type = static_cast<Elem>(7);
    REQUIRE(launch_attention(p, nullptr) == cudaErrorInvalidValue);

    QkvRopeParams r;
    r.qkv = buf.get<float>();
    r.cos = r.sin = buf.get<float>();
    r.k_cache = r.v_cache = buf.get();
    r.tokens = 1;
    r.heads = 2;
    r.kv_heads = 1;
    r.head_dim = 63; // odd
    r.cache_len = 4;
    REQUIRE(launch_qkv_rope(r, nullptr) == cudaErrorInvalidValue);
    r.head_dim = 514; // too wide
    REQUIRE(launch_qkv_rope(r, nullptr) == cudaErrorInvalidValue);

    REQUIRE(launch_topk(buf.get<float>(), 100, 257, buf.get<float>(), buf.get<int32_t>(), buf.get(), nullptr) ==
            cudaErrorInvalidValue);
    REQUIRE(launch_topk(buf.get<float>(), 10, 11, buf.get<float>(), buf.get<int32_t>(), buf.get(), nullptr) ==
            cudaErrorInvalidValue);
    REQUIRE(cudaGetLastError() == cudaSuccess); // refusals launch nothing

    // Weights and activations of different types are refused before cuBLAS sees them.
    cublasHandle_t blas = nullptr;
    REQUIRE(cublasCreate(&blas) == CUBLAS_STATUS_SUCCESS);
    GemmParams bad;
    bad.w = bad.x = buf.get();
    bad.w_type = Elem::bf16;
    bad.x_type = Elem::f16;
    bad.rows = bad.cols = bad.tokens = 4;
    bad.y = buf.get<float>();
    bad.ldy = 4;
    REQUIRE_THROWS(gemm(blas, bad));
    REQUIRE(cublasDestroy(blas) == CUBLAS_STATUS_SUCCESS);
}

#endif // RABBIT_HAVE_CUDA
