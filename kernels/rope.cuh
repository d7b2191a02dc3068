// SPDX-License-Identifier: Apache-2.0
// What happens to the qkv projection's output before attention, in one pass: its bias (Qwen2),
// the per-head RMSNorm of q and k (Qwen3), rotary embedding of q and k in the Hugging Face
// rotate-half layout, and the new keys and values written into the KV cache.
#pragma once

#include "elem.cuh"

#include <cstdint>

namespace rabbit {

struct QkvRopeParams {
    float* qkv = nullptr;          // [tokens, q_dim + 2 kv_dim] f32; q = the first q_dim of a row, then k, then v.
                                   // q (and k) are rewritten in place: bias added, normed, rotated
    const float* bias = nullptr;   // [q_dim + 2 kv_dim] f32 or null
    const float* q_norm = nullptr; // [head_dim] f32 or null; applied per head before the rotation
    const float* k_norm = nullptr; // [head_dim] f32 or null
    const float* cos = nullptr;    // [tokens, head_dim / 2] f32, for each token's position
    const float* sin = nullptr;    // [tokens, head_dim / 2] f32
    float eps = 1e-6f;
    int tokens = 0, heads = 0, kv_heads = 0, head_dim = 0; // q_dim = heads * head_dim, kv_dim = kv_heads * head_dim
    // This layer's cache: kv head g, position j at (g * cache_len + j) * head_dim.
    void* k_cache = nullptr;       // [kv_heads, cache_len, head_dim] cache_type
    void* v_cache = nullptr;       // [kv_heads, cache_len, head_dim] cache_type
    Elem cache_type = Elem::f32;
    int64_t cache_len = 0;         // positions the cache holds per kv head
    int64_t pos = 0;               // position of token 0; token t goes to position pos + t
};

// head_dim must be even and at most 512.
cudaError_t launch_qkv_rope(const QkvRopeParams& p, cudaStream_t stream);

} // namespace rabbit
