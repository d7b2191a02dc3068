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

#include <cstddef>
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
    // A draft tree (Engine::forward_tree): rows [tree_base, pos + tokens) of the cache hold it.
    // Token t attends to the positions before tree_base (from its window's start) and to the
    // tree rows r whose bit r - tree_base is set in its mask row (its ancestors and itself);
    // its window starts at tree_pos[t] + 1 - window. Null: causal, as above.
    const uint32_t* tree_mask = nullptr; // [tokens, tree_words] on the device
    const int* tree_pos = nullptr;       // [tokens] on the device
    int tree_words = 0;
    int64_t tree_base = 0;
    void* workspace = nullptr;       // k_attention_workspace bytes of device memory
    int sm_count = 0;                // multiprocessors of the device, to size the split
    size_t smem_optin = 0;           // shared memory a block may opt in to (cudaDevAttrMaxSharedMemoryPerBlockOptin),
                                     // as given to attention_setup; 0: 48 KiB only
};

// Once per device (current), before the first launch_attention: lets the kernel shapes that
// need more than 48 KiB of shared memory, and fit within smem_optin, have it.
cudaError_t attention_setup(size_t smem_optin);

// The head sizes launch_attention has kernels for (a loud error for any other), listed once:
// the kernels are instantiated, set up and dispatched from this array. Each is a multiple of 8,
// so that cache rows are whole 16-byte vectors in every cache type.
inline constexpr int k_attention_head_dims[] = {8, 16, 24, 32, 64, 80, 96, 128, 256};
inline constexpr size_t k_attention_head_dim_count = sizeof(k_attention_head_dims) / sizeof(k_attention_head_dims[0]);

inline bool attention_supports_head_dim(int d) {
    for (int s : k_attention_head_dims)
        if (s == d) return true;
    return false;
}

cudaError_t launch_attention(const AttentionParams& p, cudaStream_t stream);

} // namespace rabbit
