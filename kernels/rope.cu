// SPDX-License-Identifier: Apache-2.0
#include "rope.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

constexpr int k_rope_warps = 4;

// One warp per (token, head slot); the slots of a row are its q heads, then its k heads, then
// its v heads, each head_dim wide, so slot s starts at s * head_dim in the row. A lane owns
// the pairs (i, i + half) for i = lane, lane + 32, ...: the rotation mixes exactly those two,
// so every element is read and written by one lane and no barrier is needed. The norm needs
// the sum of squares first, so the (biased) head is read twice; the second read hits L1.
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
                                int64_t cache_len, int64_t pos) {
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
        TC* dst = v_cache + (g * cache_len + pos + t) * head_dim;
        for (int d = lane; d < head_dim; d += 32) {
            const float v = b ? x[d] + b[d] : x[d];
            x[d] = v;
            dst[d] = from_f32<TC>(v);
        }
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
    TC* dst = is_q ? nullptr : k_cache + ((s - heads) * cache_len + pos + t) * head_dim;
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
        const float ra = a * c[i] - bb * sn[i];
        const float rb = bb * c[i] + a * sn[i];
        x[i] = ra;
        x[i + half] = rb;
        if (dst) {
            dst[i] = from_f32<TC>(ra);
            dst[i + half] = from_f32<TC>(rb);
        }
    }
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
        RABBIT_LAUNCH(unsigned(blocks), 32 * k_rope_warps, 0, stream, qkv_rope_kernel<TC>)(
            p.qkv, p.bias, p.q_norm, p.k_norm, p.cos, p.sin, p.eps, p.tokens, p.heads, p.kv_heads, p.head_dim,
            static_cast<TC*>(p.k_cache), static_cast<TC*>(p.v_cache), p.cache_len, p.pos);
        return cudaGetLastError();
    });
}

} // namespace rabbit
