// SPDX-License-Identifier: Apache-2.0
// Attention over a KV cache kept as rows, one per position, in f32, bf16, f16 or q8_0: the CPU
// engine's cache under --kv-dtype other than f32, and the CUDA engine's cache in pinned host
// memory, attended where it lives (only q crosses the bus, and the output back).
//
// Flash-style: the positions go by in blocks of k_kv_block, each widened once to f32 (keys
// into attention_scores' transposed layout) and shared by every query head of its KV group,
// with an online softmax, so neither a [tokens, positions] matrix nor a widened copy of the
// whole cache exists. When there are too few (token, KV head) pairs to keep the threads busy
// (a decode step), the positions are also split between threads and the parts merged.
#pragma once

#include "common/dtype.h"
#include "engine/kv_cache.h" // is_kv_dtype, kv_row_bytes

#include <cstddef>
#include <cstdint>

namespace rabbit {

class ThreadPool;

// Positions widened at once: a multiple of k_attn_block; 2 x 256 x head_dim floats per thread.
constexpr size_t k_kv_block = 256;

// One position's key or value (head_dim f32) stored as a row of type t.   dst [kv_row_bytes]
void store_kv_row(DType t, const float* src, size_t head_dim, uint8_t* dst);

struct KvAttentionParams {
    const float* q = nullptr;  // token t, head h at q + t * q_stride + h * head_dim; f32
    size_t q_stride = 0;       // floats between tokens' q
    float* out = nullptr;      // token t, head h at out + t * out_stride + h * head_dim; f32
    size_t out_stride = 0;
    // KV head g's keys and values: k[g], v[g] each [positions][kv_row_bytes(type, head_dim)]
    const uint8_t* const* k = nullptr;
    const uint8_t* const* v = nullptr;
    DType type = DType::f32;
    size_t tokens = 0, heads = 0, kv_heads = 0, head_dim = 0; // head h reads KV head h / (heads / kv_heads)
    size_t pos = 0;    // token t is at position pos + t and attends to [max(0, pos + t + 1 - window), pos + t]
    size_t window = 0; // 0: from position 0
    float scale = 1.0f;
};

// One decode step's parameters: a token at position `positions - 1` over that many positions,
// its q and out [heads * head_dim] packed, the scale 1/sqrt(head_dim), no window.
KvAttentionParams kv_decode_params(const float* q, float* out, const uint8_t* const* k, const uint8_t* const* v, DType type,
                                   size_t heads, size_t kv_heads, size_t head_dim, size_t positions);

// Causal grouped-query attention of p.tokens tokens over the cache, on the pool's threads.
void kv_attention(ThreadPool& pool, const KvAttentionParams& p);

} // namespace rabbit
