// SPDX-License-Identifier: Apache-2.0
// Causal grouped-query attention over the KV cache, for a prompt (many tokens) and for a
// decode step (one) alike. Flash-style: K and V are read in tiles shared by every query row of
// a block (the tokens times the heads of one KV group), with an online softmax, so no
// [tokens, positions] matrix exists. The positions are also split across blocks when there
// are too few rows to fill the GPU (a decode step over a long context); the splits' partial
// results are merged by a second kernel.
#pragma once

#include "elem.cuh"
#include "workspace.h" // k_attention_workspace

#include <cstdint>

namespace rabbit {

struct AttentionParams {
    const float* q = nullptr;        // token t, head h at q + t * q_stride + h * head_dim; f32
    int64_t q_stride = 0;            // floats between tokens' q (q_dim + 2 kv_dim in the qkv buffer)
    const void* k_cache = nullptr;   // [kv_heads, cache_len, head_dim] cache_type (this layer)
    const void* v_cache = nullptr;   // [kv_heads, cache_len, head_dim] cache_type
    Elem cache_type = Elem::f32;
    int64_t cache_len = 0;
    void* out = nullptr;             // [tokens, heads * head_dim] out_type
    Elem out_type = Elem::f32;
    int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0; // head h reads kv head h / (heads / kv_heads)
    int64_t pos = 0;                 // token t is at position pos + t and attends to positions
    int64_t window = 0;              // [max(0, pos + t + 1 - window), pos + t] (window 0: from 0)
    float scale = 1.0f;              // usually 1 / sqrt(head_dim)
    void* workspace = nullptr;       // k_attention_workspace bytes of device memory
    int sm_count = 0;                // multiprocessors of the device, to size the split
    size_t smem_optin = 0;           // shared memory a block may opt in to (cudaDevAttrMaxSharedMemoryPerBlockOptin),
                                     // as given to attention_setup; 0: 48 KiB only
};

// Once per device (current), before the first launch_attention: lets the kernel shapes that
// need more than 48 KiB of shared memory, and fit within smem_optin, have it.
cudaError_t attention_setup(size_t smem_optin);

// The head sizes launch_attention has kernels for (a loud error for any other).
inline bool attention_supports_head_dim(int d) {
    switch (d) {
    case 8: case 16: case 24: case 32: case 64: case 80: case 96: case 128: case 256: return true;
    default: return false;
    }
}

cudaError_t launch_attention(const AttentionParams& p, cudaStream_t stream);

} // namespace rabbit
