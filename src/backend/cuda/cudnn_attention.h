// SPDX-License-Identifier: Apache-2.0
// cuDNN's fused (flash-style) scaled-dot-product attention for the CUDA engine's long prefill
// parts on sm_80 and newer: causal, grouped-query, bf16 or f16. The graph is built with the
// cuDNN backend API (operation graph, engine heuristics, execution plan) once per shape and its
// plan cached (sdpa_shape.h). Only a real CUDA build that found cuDNN has it
// (cudnn_attention.cpp); every other build, the emulated device's included, compiles
// cudnn_absent.cpp, where built() is false and the engine keeps rabbit's kernel.
// Unverified: compiled, not run on a GPU (docs/ARCHITECTURE.md).
#pragma once

#include "elem.cuh"

#include <cuda_runtime.h>

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>

namespace rabbit {

// One sequence's part: its queries against the cache's positions [0, kv_len), the part's own
// being the last `tokens` of them (bottom-right causal: query t sees positions
// [0, kv_len - tokens + t]).
struct CudnnSdpaArgs {
    const void* q = nullptr;       // [tokens, heads, head_dim] elem, contiguous
    const void* k_cache = nullptr; // [kv_heads, cache_len, head_dim] elem (one layer)
    const void* v_cache = nullptr; // [kv_heads, cache_len, head_dim] elem
    void* out = nullptr;           // [tokens, heads * head_dim] elem, as rabbit's kernel writes it
    Elem elem = Elem::bf16;        // bf16 or f16, of all four
    int64_t tokens = 0, kv_len = 0, cache_len = 0;
    int heads = 0, kv_heads = 0, head_dim = 0; // head h reads KV head h / (heads / kv_heads)
    float scale = 1.0f;
    void* workspace = nullptr;     // device memory the plan may use
    size_t workspace_bytes = 0;
};

class CudnnAttention {
public:
    // Whether this binary links cuDNN.
    static bool built();
    // The graph's tensor and operation descriptors for a's shape (pointers unused), built without
    // a device or a handle, cuDNN checking each as it is finalized: "" when every one finalizes,
    // else the first failure. What needs a GPU (the operation graph, heuristics, plans,
    // execution) is not reached.
    static std::string check_descriptors(const CudnnSdpaArgs& a);
    // The cuDNN handle on the current device; an Error (unsupported) without cuDNN or when
    // cuDNN cannot start there.
    CudnnAttention();
    ~CudnnAttention();
    CudnnAttention(const CudnnAttention&) = delete;
    CudnnAttention& operator=(const CudnnAttention&) = delete;

    // Queues the attention on `stream`. False when no cuDNN engine runs this shape within the
    // workspace (the caller then runs rabbit's kernel); remembered per shape, so the refusal
    // costs one graph build. A failure to execute a plan that was built is an Error.
    bool run(const CudnnSdpaArgs& a, cudaStream_t stream);
    // The reason of the last refusal, for -v.
    const std::string& refusal() const;
    // Plans built so far (each a shape that cuDNN runs or refused).
    size_t graphs_built() const;

private:
    struct State;
    std::unique_ptr<State> s_;
};

} // namespace rabbit
