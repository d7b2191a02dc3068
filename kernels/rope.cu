// SPDX-License-Identifier: Apache-2.0
#include "rope.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

constexpr int k_rope_warps = 4;

// The warp's new key or value row, x[0, head_dim) f32 (already written by its lanes), into the
// cache row dst. With `vectors`, in 16-byte stores (a row is whole vectors, dst 16-byte
// aligned): a cache in host memory (mapped, write-combined) then takes whole bus writes, not
// scattered 2-byte ones. The __syncwarp orders the lanes' writes of x before these reads.
template <typename TC>
__device__ __forceinline__ void store_cache_row(const float* x, TC* dst, int head_dim, int lane, bool vectors) {
    __syncwarp();
    if (!vectors) {
        for (int d = lane; d < head_dim; d += 32) dst[d] = from_f32<TC>(x[d]);
        return;
    }
    constexpr int per = int(16 / sizeof(TC)); // elements in a 16-byte vector
    for (int d0 = lane * per; d0 < head_dim; d0 += 32 * per) {
        uint4 v;
        TC* e = reinterpret_cast<TC*>(&v);
#pragma unroll
        for (int k = 0; k < per; ++k) e[k] = from_f32<TC>(x[d0 + k]);
        *reinterpret_cast<uint4*>(dst + d0) = v;
    }
}

// One warp per (token, head slot); the slots of a row are its q heads, then its k heads, then
// its v heads, each head_dim wide, so slot s starts at s * head_dim in the row. A lane owns
// the pairs (i, i + half) for i = lane, lane + 32, ...: the rotation mixes exactly those two,
// so every element is read and written by one lane. The norm needs the sum of squares first,
// so the (biased) head is read twice; the second read hits L1. Keys and values then go to the
// cache from the rewritten row (store_cache_row).
template <typename TC>
__global__ void qkv_rope_kernel(float* qkv,                       // [tokens, (heads + 2 kv_heads) * head_dim] f32
                                const float* __restrict__ bias,   // [(heads + 2 kv_heads) * head_dim] f32 or null
                                const float* __restrict__ q_norm, // [head_dim] f32 or null
                                const float* __restrict__ k_norm, // [head_dim] f32 or null
                                const float* __restrict__ cos,    // [tokens, head_dim / 2] f32
                                const float* __restrict__ sin,    // [tokens, head_dim / 2] f32
                                float eps, int tokens, int heads, int kv_heads, int head_dim,
                                TC* k_cache, // [kv_heads, cache_len, head_dim] TC
                                TC* v_cache, // [kv_heads, cache_len, head_dim] TC
                                int64_t cache_len, int64_t pos, bool vectors) {
    const int lane = threadIdx.x & 31;
    const int slots = heads + 2 * kv_heads;
    const int64_t item = int64_t(blockIdx.x) * k_rope_warps + (threadIdx.x >> 5);
    if (item >= int64_t(tokens) * slots) return; // whole warps leave; the kernel has no block barrier
    const int t = int(item / slots), s = int(item % slots);
    const int half = head_dim / 2;
    const int64_t row_len = int64_t(slots) * head_dim;
    float* x = qkv + t * row_len + int64_t(s) * head_dim;
    const float* b = bias ? bias + int64_t(s) * head_dim : nullptr;

    if (s >= heads + kv_heads) { // a v head: the bias, then into the cache
        const int g = s - heads - kv_heads;
        for (int d = lane; d < head_dim; d += 32)
            if (b) x[d] += b[d];
        store_cache_row(x, v_cache + (g * cache_len + pos + t) * head_dim, head_dim, lane, vectors);
        return;
    }

    const bool is_q = s < heads;
    const float* nw = is_q ? q_norm : k_norm;
    float inv = 1.0f;
    if (nw) {
        float ss = 0.0f;
        for (int d = lane; d < head_dim; d += 32) {
            const float v = b ? x[d] + b[d] : x[d];
            ss += v * v;
        }
        ss = warp_sum(ss);
        inv = 1.0f / sqrtf(ss / float(head_dim) + eps);
    }
    const float* c = cos + int64_t(t) * half;
    const float* sn = sin + int64_t(t) * half;
    for (int i = lane; i < half; i += 32) {
        float a = x[i], bb = x[i + half];
        if (b) {
            a += b[i];
            bb += b[i + half];
        }
        if (nw) {
            a = nw[i] * (a * inv);
            bb = nw[i + half] * (bb * inv);
        }
        x[i] = a * c[i] - bb * sn[i];
        x[i + half] = bb * c[i] + a * sn[i];
    }
    if (!is_q) store_cache_row(x, k_cache + ((s - heads) * cache_len + pos + t) * head_dim, head_dim, lane, vectors);
}

} // namespace

cudaError_t launch_qkv_rope(const QkvRopeParams& p, cudaStream_t stream) {
    if (!p.qkv || !p.cos || !p.sin || !p.k_cache || !p.v_cache || p.tokens < 0 || p.heads <= 0 || p.kv_heads <= 0 ||
        p.head_dim <= 0 || p.head_dim % 2 != 0 || p.head_dim > 512 || p.pos < 0 || p.pos + p.tokens > p.cache_len ||
        !valid_elem(p.cache_type))
        return cudaErrorInvalidValue;
    if (p.tokens == 0) return cudaSuccess;
    const int64_t items = int64_t(p.tokens) * (p.heads + 2 * p.kv_heads);
    const int64_t blocks = (items + k_rope_warps - 1) / k_rope_warps;
    if (blocks > 0x7fffffff) return cudaErrorInvalidValue;
    return dispatch_elem(p.cache_type, [&](auto tag) {
        using TC = typename decltype(tag)::type;
        const bool vectors = (size_t(p.head_dim) * sizeof(TC)) % 16 == 0 && reinterpret_cast<uintptr_t>(p.k_cache) % 16 == 0 &&
                             reinterpret_cast<uintptr_t>(p.v_cache) % 16 == 0;
        RABBIT_LAUNCH(unsigned(blocks), 32 * k_rope_warps, 0, stream, qkv_rope_kernel<TC>)(
            p.qkv, p.bias, p.q_norm, p.k_norm, p.cos, p.sin, p.eps, p.tokens, p.heads, p.kv_heads, p.head_dim,
            static_cast<TC*>(p.k_cache), static_cast<TC*>(p.v_cache), p.cache_len, p.pos, vectors);
        return cudaGetLastError();
    });
}

} // namespace rabbit
