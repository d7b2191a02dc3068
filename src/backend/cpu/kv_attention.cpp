// SPDX-License-Identifier: Apache-2.0
#include "backend/cpu/kv_attention.h"

#include "backend/cpu/kernels.h"
#include "common/error.h"
#include "common/quant.h"
#include "common/thread_pool.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <vector>

namespace rabbit {

namespace {

static_assert(k_kv_block % k_attn_block == 0, "a KV block is whole key blocks");

// Rows [b0, b1) of a row cache widened to f32: keys into attention_scores' transposed blocks
// (position j at column j % k_attn_block of block j / k_attn_block, counted from b0; the tail
// of the last block zero), values row by row.
//   kt [k_kv_block / k_attn_block][head_dim][k_attn_block], vf [k_kv_block][head_dim]
void widen_block(const KvAttentionParams& p, const uint8_t* k, const uint8_t* v, size_t b0, size_t b1, float* kt,
                 float* vf, float* row) {
    const size_t hd = p.head_dim, n = b1 - b0;
    const size_t padded = (n + k_attn_block - 1) / k_attn_block * k_attn_block;
    // Rows as a matrix's, so that widen_row's vector conversions (F16C, bf16 shifts) do the work.
    const Matrix keys{k, p.type, b1, hd}, values{v, p.type, b1, hd};
    for (size_t j = 0; j < n; ++j) {
        widen_row(keys, b0 + j, row);
        float* dst = kt + j / k_attn_block * hd * k_attn_block + j % k_attn_block;
        for (size_t d = 0; d < hd; ++d) dst[d * k_attn_block] = row[d];
        widen_row(values, b0 + j, vf + j * hd);
    }
    for (size_t j = n; j < padded; ++j) {
        float* dst = kt + j / k_attn_block * hd * k_attn_block + j % k_attn_block;
        for (size_t d = 0; d < hd; ++d) dst[d * k_attn_block] = 0.0f;
    }
}

// An online softmax's running state for one query head: the largest score so far, the sum of
// exp(score - max), and the weighted sum of values on the same scale.
struct Partial {
    float max = -std::numeric_limits<float>::infinity();
    float sum = 0.0f;
};

// Work item: token t, KV head g, part s of the positions. Writes each head of the group's
// partial state and unnormalised output.
struct Split {
    size_t parts = 1;
    size_t span(size_t n) const { return (n + parts - 1) / parts; }
};

void attend_part(const KvAttentionParams& p, size_t t, size_t g, size_t first, size_t end, Partial* state,
                 float* acc) {
    const size_t hd = p.head_dim, group = p.heads / p.kv_heads;
    thread_local std::vector<float> kt, vf, row, s, tmp;
    kt.resize(k_kv_block * hd);
    vf.resize(k_kv_block * hd);
    row.resize(hd);
    s.resize(k_kv_block);
    tmp.resize(hd);
    for (size_t i = 0; i < group; ++i) {
        state[i] = Partial{};
        std::fill(acc + i * hd, acc + (i + 1) * hd, 0.0f);
    }
    // Blocks aligned to k_kv_block in absolute positions, the first and last cut to [first, end).
    for (size_t b0 = first / k_kv_block * k_kv_block; b0 < end; b0 += k_kv_block) {
        const size_t lo = std::max(first, b0), hi = std::min(end, b0 + k_kv_block);
        widen_block(p, p.k[g], p.v[g], lo, hi, kt.data(), vf.data(), row.data());
        const size_t n = hi - lo;
        for (size_t i = 0; i < group; ++i) {
            const size_t h = g * group + i;
            attention_scores(p.q + t * p.q_stride + h * hd, kt.data(), hd, 0, n, p.scale, s.data());
            const float block_max = *std::max_element(s.begin(), s.begin() + long(n));
            Partial& st = state[i];
            const float new_max = std::max(st.max, block_max);
            const float correction = std::exp(st.max - new_max); // 0 for the first block
            float sum = 0.0f;
            for (size_t j = 0; j < n; ++j) sum += s[j] = std::exp(s[j] - new_max);
            attention_values(s.data(), vf.data(), hd, 0, n, tmp.data());
            float* a = acc + i * hd;
            for (size_t d = 0; d < hd; ++d) a[d] = a[d] * correction + tmp[d];
            st.sum = st.sum * correction + sum;
            st.max = new_max;
        }
    }
}

} // namespace

void store_kv_row(DType t, const float* src, size_t head_dim, uint8_t* dst) {
    switch (t) {
    case DType::f32: std::copy(src, src + head_dim, reinterpret_cast<float*>(dst)); return;
    case DType::bf16:
    case DType::f16: convert_elements(src, DType::f32, dst, t, head_dim); return;
    case DType::q8_0: quantize(t, src, dst, head_dim); return;
    default: RABBIT_CHECK(false, "a KV cache type that is not f32, bf16, f16 or q8_0");
    }
}

void kv_attention(ThreadPool& pool, const KvAttentionParams& p) {
    RABBIT_CHECK(p.kv_heads && p.heads % p.kv_heads == 0, "query heads that are not whole groups of KV heads");
    const size_t hd = p.head_dim, group = p.heads / p.kv_heads;
    // Enough parts for about two items per thread, each at least one block of positions long.
    const size_t pairs = p.tokens * p.kv_heads, longest = p.pos + p.tokens;
    Split split;
    if (pairs < 2 * pool.size())
        split.parts = std::max<size_t>(1, std::min((2 * pool.size() + pairs - 1) / pairs, (longest + k_kv_block - 1) / k_kv_block));
    std::vector<Partial> state(pairs * split.parts * group);
    std::vector<float> acc(state.size() * hd);
    pool.parallel_for(pairs * split.parts, [&](size_t b, size_t e) {
        for (size_t item = b; item < e; ++item) {
            const size_t s = item % split.parts, pair = item / split.parts, t = pair / p.kv_heads, g = pair % p.kv_heads;
            const size_t end = p.pos + t + 1, first = p.window && end > p.window ? end - p.window : 0;
            // The part's positions, in whole blocks so that no block is widened twice.
            const size_t blocks = (end - first + k_kv_block - 1) / k_kv_block, per = split.span(blocks);
            const size_t lo = std::min(end, first + s * per * k_kv_block), hi = std::min(end, lo + per * k_kv_block);
            Partial* st = state.data() + item * group;
            float* a = acc.data() + item * group * hd;
            if (lo >= hi) {
                for (size_t i = 0; i < group; ++i) st[i] = Partial{};
                std::fill(a, a + group * hd, 0.0f);
                continue;
            }
            attend_part(p, t, g, lo, hi, st, a);
        }
    });
    // Merge each head's parts onto the largest maximum, and normalise.
    for (size_t pair = 0; pair < pairs; ++pair) {
        const size_t t = pair / p.kv_heads, g = pair % p.kv_heads;
        for (size_t i = 0; i < group; ++i) {
            float top = -std::numeric_limits<float>::infinity();
            for (size_t s = 0; s < split.parts; ++s) top = std::max(top, state[(pair * split.parts + s) * group + i].max);
            float* out = p.out + t * p.out_stride + (g * group + i) * hd;
            std::fill(out, out + hd, 0.0f);
            float sum = 0.0f;
            for (size_t s = 0; s < split.parts; ++s) {
                const size_t item = pair * split.parts + s;
                const Partial& st = state[item * group + i];
                if (st.sum == 0.0f) continue;
                const float w = std::exp(st.max - top);
                sum += st.sum * w;
                const float* a = acc.data() + (item * group + i) * hd;
                for (size_t d = 0; d < hd; ++d) out[d] += a[d] * w;
            }
            for (size_t d = 0; d < hd; ++d) out[d] /= sum;
        }
    }
}

KvAttentionParams kv_decode_params(const float* q, float* out, const uint8_t* const* k, const uint8_t* const* v, DType type,
                                   size_t heads, size_t kv_heads, size_t head_dim, size_t positions) {
    KvAttentionParams p;
    p.q = q;
    p.q_stride = heads * head_dim;
    p.out = out;
    p.out_stride = heads * head_dim;
    p.k = k;
    p.v = v;
    p.type = type;
    p.tokens = 1;
    p.heads = heads;
    p.kv_heads = kv_heads;
    p.head_dim = head_dim;
    p.pos = positions - 1;
    p.scale = 1.0f / std::sqrt(float(head_dim));
    return p;
}

} // namespace rabbit
