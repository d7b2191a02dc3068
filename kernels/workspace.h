// SPDX-License-Identifier: Apache-2.0
// The device workspaces the kernels and cuBLAS need, in plain C++ (no CUDA): the kernels size
// their work by these, and the VRAM planner (src/engine/memory_plan.cpp) plans the buffers by
// them. Each size is defined here and nowhere else.
#pragma once

#include <cstddef>
#include <cstdint>

namespace rabbit {

// cuBLAS: the workspace rabbit gives its handle (cublasSetWorkspace), so that it makes no
// default one of its own.
constexpr size_t k_cublas_workspace = 32ull << 20;

// launch_attention: the partial results of positions split across blocks.
constexpr size_t k_attention_workspace = 16ull << 20;

// Prefill with quantized weights: tiles of a matrix's rows dequantized to the compute type for
// cuBLAS (backend/cuda/gemm.cpp's weight_product): 16 Mi 16-bit elements, over a thousand
// rows of the widest matrices, enough for cuBLAS's efficient tile shapes.
constexpr size_t k_dequant_workspace = 32ull << 20;

// launch_argmax and launch_topk.
constexpr int k_topk_max = 256;        // the most candidates launch_topk returns
constexpr int k_topk_chunk = 4096;     // keys a block sorts in shared memory at once
constexpr int k_argmax_threads = 256;
constexpr int k_argmax_max_blocks = 1024;

inline int argmax_blocks(int64_t n) {
    const int64_t b = (n + k_argmax_threads * 8 - 1) / (k_argmax_threads * 8);
    return int(b < 1 ? 1 : b > k_argmax_max_blocks ? k_argmax_max_blocks : b);
}
inline int64_t topk_chunks(int64_t n) { return (n + k_topk_chunk - 1) / k_topk_chunk; }

// Bytes of device workspace launch_argmax and launch_topk need for a vocabulary of n: the
// argmax's per-block candidates, or two buffers of top-k survivors (chunks * k keys at most).
inline size_t sample_workspace_bytes(int64_t n) {
    if (n < 1) n = 1;
    const size_t argmax = size_t(argmax_blocks(n)) * sizeof(unsigned long long);
    const size_t topk = 2 * size_t(topk_chunks(n)) * k_topk_max * sizeof(unsigned long long);
    return argmax > topk ? argmax : topk;
}

} // namespace rabbit
