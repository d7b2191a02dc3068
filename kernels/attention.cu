// SPDX-License-Identifier: Apache-2.0
// Flash-style attention on CUDA cores (f32 arithmetic; no tensor cores, so one code path for
// every architecture from sm_75).
//
// A block: 4 warps and BR = 4 * RW query rows of one KV group g, rows being (token, head of the
// group) pairs in the order r = token * group + head_in_group, so consecutive rows need nearly
// the same positions. Row r of the block belongs to warp r % 4 (slot r / 4): with a decode
// step's handful of rows every warp still gets some. The block walks its positions in tiles of
// 32: the K and V tiles are copied (16-byte loads, each cache element once per block, as it is,
// in the cache type) into shared memory, then
//   scores: lane j of every warp takes position j0 + j against each of its warp's rows (q in
//           shared memory, pre-scaled by scale * log2 e, so the softmax uses exp2);
//   softmax: per row, the tile maximum and sum by warp shuffles, online rescaling;
//   values: the probabilities go through shared memory; lane c accumulates output dimensions
//           (2c, 2c + 1) (+ 64 i) of each row from the V tile (for D < 64, lanes c >= D / 2 hold
//           nothing and only take part in the shuffles and barriers).
// D is any multiple of 8 (the launcher takes 8, 16, 24, 32, 64, 80, 96, 128, 256): a cache row
// is then whole 16-byte vectors in every cache type (one for a 16-bit D = 8), and the score
// phase's 4-element reads stay aligned in the padded tile rows; AttnShape checks both.
// Shared memory: q [BR, D] f32 + p [BR, 32] f32 + K and V tiles [32, D + 4] cache type (the 4
// elements of padding make the per-lane row reads of the score phase free of bank conflicts).
// f32 caches with D = 256 keep one tile buffer for K then V, to stay small.
//
// A draft tree (AttentionParams::tree_mask): the rows from tree_base on are tested against the
// token's row of mask bits as well, in the same place as the causal and window bounds.
//
// Splits: when the blocks would not fill the GPU (a decode step), blockIdx.z cuts each block's
// position range into `splits` parts; each writes its rows' (max, sum, unnormalised output) to
// the workspace, and attention_merge_kernel combines them.
#include "attention.cuh"

#include "elem_device.cuh"

#include <climits>
#include <utility>

namespace rabbit {

namespace {

constexpr int k_attn_warps = 4;
constexpr int k_attn_threads = 32 * k_attn_warps;
constexpr int k_tile = 32; // positions per K/V tile: one per lane in the score phase
constexpr int k_pad = 4;   // elements of padding per shared tile row
constexpr int k_min_split_positions = 128;
constexpr float k_log2e = 1.44269504088896340736f;

__device__ __forceinline__ float neg_inf() { return __int_as_float(0xff800000u); }

template <int D, typename TC, int RW>
struct AttnShape {
    static constexpr int br = RW * k_attn_warps; // query rows per block
    static constexpr bool shared_kv = D == 256 && sizeof(TC) == 4;
    static constexpr int row = D + k_pad; // elements per shared tile row
    static constexpr size_t q_bytes = size_t(br) * D * sizeof(float);
    static constexpr size_t p_bytes = size_t(br) * k_tile * sizeof(float);
    static constexpr size_t tile_bytes = size_t(k_tile) * row * sizeof(TC);
    static constexpr size_t smem = q_bytes + p_bytes + (shared_kv ? 1 : 2) * tile_bytes;
    static_assert(q_bytes % 16 == 0 && p_bytes % 16 == 0 && tile_bytes % 16 == 0, "shared arrays stay 16-byte aligned");
    static_assert(D % 8 == 0 && D <= 256, "head sizes the layout is made for");
    static_assert((row * sizeof(TC)) % 8 == 0, "tile rows are read 8 bytes at a time");
    static_assert((row * sizeof(TC)) % (4 * sizeof(TC)) == 0 && (D * sizeof(float)) % 16 == 0,
                  "the score phase reads 4 elements of K and of q at once, aligned to their size");
    static_assert((D * sizeof(TC)) % 16 == 0, "cache rows are whole 16-byte vectors");
};

struct AttnArgs {
    const float* q;   // token t, head h at q + t * q_stride + h * D; f32
    int64_t q_stride;
    const void* k;    // [kv_heads, cache_len, D] TC
    const void* v;    // [kv_heads, cache_len, D] TC
    int64_t cache_len;
    void* out;        // [tokens, heads * D] out_type (splits == 1)
    Elem out_type;
    int tokens, heads, group;
    int rows;         // tokens * group query rows per KV group
    int pos, window;  // window 0: none
    float scale_log2; // scale * log2(e)
    const uint32_t* tree_mask; // [tokens, tree_words], or null (AttentionParams)
    const int* tree_pos;       // [tokens]
    int tree_words, tree_base;
    int splits;
    float* ws_ml;     // [splits, tokens * heads, 2] f32: running max (log2 units), sum
    float* ws_acc;    // [splits, tokens * heads, D] f32: unnormalised output
};

// dst [32, D + pad] TC (shared) <- src [nv, D] TC (global, contiguous, 16-byte aligned); rows
// from nv on are zeroed, so that stale or never-written shared memory (NaN bits) cannot reach
// the products (their probabilities are 0, but 0 * NaN is NaN).
template <int D, typename TC>
__device__ __forceinline__ void load_tile(TC* dst, const TC* __restrict__ src, int nv) {
    constexpr int vpr = int(D * sizeof(TC) / 16); // 16-byte vectors per row
    constexpr int nvec = k_tile * vpr;
    constexpr int iters = (nvec + k_attn_threads - 1) / k_attn_threads;
    constexpr int row_bytes = int((D + k_pad) * sizeof(TC));
    uint4 r[iters] = {};
#pragma unroll
    for (int it = 0; it < iters; ++it) {
        const int v = threadIdx.x + it * k_attn_threads;
        r[it] = make_uint4(0, 0, 0, 0);
        if (v < nvec && v / vpr < nv) r[it] = reinterpret_cast<const uint4*>(src)[v];
    }
#pragma unroll
    for (int it = 0; it < iters; ++it) {
        const int v = threadIdx.x + it * k_attn_threads;
        if (v < nvec) {
            // Shared rows are 8-byte aligned only (the padding), hence two 8-byte stores.
            uint2* d = reinterpret_cast<uint2*>(reinterpret_cast<unsigned char*>(dst) + (v / vpr) * row_bytes +
                                                (v % vpr) * 16);
            d[0] = make_uint2(r[it].x, r[it].y);
            d[1] = make_uint2(r[it].z, r[it].w);
        }
    }
}

// ---- the steps of attention_kernel ----------------------------------------------------------
// Each runs in every thread of the block; the kernel holds the shared memory and the barriers.

// Output pairs (2c, 2c + 1) per lane and row: c = lane + 32 i for i < k_lane_pairs<D>.
template <int D>
constexpr int k_lane_pairs = (D / 2 + 31) / 32;

// Where a thread stands: its lane and warp, the block's KV group and split, and the block's
// query rows [row0, row0 + nrows) of that group.
struct AttnBlock {
    int lane, warp;
    int g, split;
    int row0, nrows;
};

// A query row R of KV group g is (token t, head h) with R = t * group + (h - g * group).
struct RowHead {
    int t, h;
};
__device__ __forceinline__ RowHead row_head(const AttnArgs& a, int g, int R) {
    const int t = R / a.group;
    return {t, g * a.group + (R - t * a.group)};
}

// The positions of the block's split: [lo, hi), whole tiles from the block's first position.
struct PositionRange {
    int lo, hi;
};

// Per slot s (row s * warps + warp of the block) of a warp: the online softmax's running max
// (log2 units) and sum, and the lane's unnormalised output pairs.
template <int RW, int NP>
struct RowAccum {
    float m[RW], l[RW];
    float2 o[RW][NP];
};

// q_s [br, D] f32 (shared) <- the block's rows of a.q times scale * log2 e, so that the
// softmax can use exp2; rows past nrows are 0.
template <int D, int BR>
__device__ __forceinline__ void load_query_tile(float* q_s, const AttnArgs& a, const AttnBlock& b) {
    for (int e = threadIdx.x; e < BR * D; e += k_attn_threads) {
        const int r = e / D, d = e - r * D;
        float x = 0.0f;
        if (r < b.nrows) {
            const RowHead th = row_head(a, b.g, b.row0 + r);
            x = a.q[th.t * a.q_stride + int64_t(th.h) * D + d] * a.scale_log2;
        }
        q_s[e] = x;
    }
}

// Each slot's allowed positions [first, last] (causal, and the sliding window when there is
// one); an empty range for rows past the end.
// In a draft tree, last is the token's own row and the window starts from its position.
template <int RW>
__device__ __forceinline__ void allowed_positions(const AttnArgs& a, const AttnBlock& b, int (&first)[RW],
                                                  int (&last)[RW]) {
#pragma unroll
    for (int s = 0; s < RW; ++s) {
        const int r = s * k_attn_warps + b.warp;
        first[s] = 1;
        last[s] = 0;
        if (r < b.nrows) {
            const int t = (b.row0 + r) / a.group;
            last[s] = a.pos + t;
            const int at = a.tree_mask ? a.tree_pos[t] : last[s];
            first[s] = a.window > 0 ? max(0, at + 1 - a.window) : 0;
        }
    }
}

// Whether slot s's token attends to row j of a draft tree (j >= tree_base); rows before the
// tree, and every row without one, are decided by [first, last] alone.
template <int RW>
__device__ __forceinline__ bool tree_allows(const AttnArgs& a, const AttnBlock& b, int s, int j) {
    if (!a.tree_mask || j < a.tree_base) return true;
    const int t = (b.row0 + s * k_attn_warps + b.warp) / a.group, bit = j - a.tree_base;
    return (a.tree_mask[int64_t(t) * a.tree_words + bit / 32] >> (bit % 32)) & 1u;
}

// The block's positions (first and last are monotonic in the row), then this split's part.
__device__ __forceinline__ PositionRange split_positions(const AttnArgs& a, const AttnBlock& b) {
    const int t_lo = b.row0 / a.group, t_hi = (b.row0 + b.nrows - 1) / a.group;
    // A draft tree's tokens are at positions from tree_base on, whatever their rows.
    const int lo = a.window > 0 ? max(0, (a.tree_mask ? a.tree_base : a.pos + t_lo) + 1 - a.window) : 0;
    const int hi = a.pos + t_hi + 1; // exclusive
    const int chunk = ((hi - lo + a.splits - 1) / a.splits + k_tile - 1) / k_tile * k_tile;
    const int s_lo = lo + b.split * chunk; // may be past hi: an empty split
    return {s_lo, min(hi, s_lo + chunk)};
}

// Max -inf and nothing summed: a row that never sees an allowed position stays so.
template <int RW, int NP>
__device__ __forceinline__ void init_accum(RowAccum<RW, NP>& acc) {
#pragma unroll
    for (int s = 0; s < RW; ++s) {
        acc.m[s] = neg_inf();
        acc.l[s] = 0.0f;
#pragma unroll
        for (int i = 0; i < NP; ++i) acc.o[s][i] = make_float2(0.0f, 0.0f);
    }
}

// sc[s] = score of tile position `lane` against the warp's slot s:
// q_s [br, D] f32 (shared, pre-scaled) . k_s [32, D + pad] TC (shared).
template <int D, typename TC, int RW>
__device__ __forceinline__ void tile_scores(const float* q_s, const TC* k_s, const AttnBlock& b, float (&sc)[RW]) {
#pragma unroll
    for (int s = 0; s < RW; ++s) sc[s] = 0.0f;
    const TC* krow = k_s + b.lane * AttnShape<D, TC, RW>::row;
#pragma unroll 4
    for (int d = 0; d < D; d += 4) {
        const float4 kk = load4_f32(krow + d);
#pragma unroll
        for (int s = 0; s < RW; ++s) {
            const float4 qq = *reinterpret_cast<const float4*>(q_s + (s * k_attn_warps + b.warp) * D + d);
            sc[s] = fmaf(qq.x, kk.x, sc[s]);
            sc[s] = fmaf(qq.y, kk.y, sc[s]);
            sc[s] = fmaf(qq.z, kk.z, sc[s]);
            sc[s] = fmaf(qq.w, kk.w, sc[s]);
        }
    }
}

// Online softmax over the scores sc of tile positions [j0, j0 + nv), one per lane. The mask
// first: position j = j0 + lane scores -inf for slot s unless it is in the tile and in the
// slot's [first, last] (causal, sliding window); it stays in this loop, where nvcc gives the
// code the one-piece kernel had. Then per slot the tile maximum and sum by warp shuffles (every
// lane takes part), the running output rescaled, and the lane's probability to p_w [RW, 32] f32
// (shared, this warp's). A row with nothing allowed so far keeps max -inf and
// adds nothing (no -inf - -inf); a row with nothing allowed in this tile rescales by
// exp2(0) = 1.
template <int RW, int NP>
__device__ __forceinline__ void softmax_update(const AttnArgs& a, const AttnBlock& b, const float (&sc)[RW], int j0,
                                               int nv, const int (&first)[RW], const int (&last)[RW],
                                               RowAccum<RW, NP>& acc, float* p_w) {
    const int lane = b.lane, j = j0 + lane;
#pragma unroll
    for (int s = 0; s < RW; ++s) {
        const bool ok = lane < nv && j >= first[s] && j <= last[s] && tree_allows<RW>(a, b, s, j);
        const float x = ok ? sc[s] : neg_inf();
        const float mn = fmaxf(acc.m[s], warp_max(x));
        float p = 0.0f, alpha = 1.0f;
        if (mn != neg_inf()) { // the same in every lane
            alpha = exp2f(acc.m[s] - mn);
            p = exp2f(x - mn);
            acc.m[s] = mn;
        }
        acc.l[s] = acc.l[s] * alpha + warp_sum(p);
#pragma unroll
        for (int i = 0; i < NP; ++i) {
            acc.o[s][i].x *= alpha;
            acc.o[s][i].y *= alpha;
        }
        p_w[s * k_tile + lane] = p;
    }
}

// acc.o += p_w [RW, 32] f32 (shared, this warp's; read across lanes) x v_s [32, D + pad] TC
// (shared), over the tile's first nv positions, four at a time: rows of the tile past nv have
// p = 0 and zeroed V. Lane c adds to output pairs c + 32 i below D / 2.
template <int D, typename TC, int RW, int NP>
__device__ __forceinline__ void accumulate_values(const float* p_w, const TC* v_s, int nv, int lane,
                                                  RowAccum<RW, NP>& acc) {
    constexpr int row = AttnShape<D, TC, RW>::row;
    for (int jj = 0; jj < nv; jj += 4) {
        float4 pp[RW];
#pragma unroll
        for (int s = 0; s < RW; ++s) pp[s] = *reinterpret_cast<const float4*>(p_w + s * k_tile + jj);
#pragma unroll
        for (int i = 0; i < NP; ++i) {
            const int c = lane + 32 * i;
            if (c < D / 2) {
                const TC* vp = v_s + jj * row + 2 * c;
                const float2 v0 = load2_f32(vp), v1 = load2_f32(vp + row), v2 = load2_f32(vp + 2 * row),
                             v3 = load2_f32(vp + 3 * row);
#pragma unroll
                for (int s = 0; s < RW; ++s) {
                    float2 o = acc.o[s][i];
                    o.x = fmaf(pp[s].x, v0.x, o.x);
                    o.y = fmaf(pp[s].x, v0.y, o.y);
                    o.x = fmaf(pp[s].y, v1.x, o.x);
                    o.y = fmaf(pp[s].y, v1.y, o.y);
                    o.x = fmaf(pp[s].z, v2.x, o.x);
                    o.y = fmaf(pp[s].z, v2.y, o.y);
                    o.x = fmaf(pp[s].w, v3.x, o.x);
                    o.y = fmaf(pp[s].w, v3.y, o.y);
                    acc.o[s][i] = o;
                }
            }
        }
    }
}

// The warp's rows of the block, each (token, head) to a.out [tokens, heads * D] out_type as
// o / l (0 for a row that saw nothing), or, with splits, to its partial result at
// idx = (split, row) for attention_merge_kernel: a.ws_ml <- (m, l), a.ws_acc <- o unnormalised.
// Both stores stay written out here: as helpers of their own, nvcc duplicated the loop over the
// slots for some shapes (D = 64), where this keeps the code the one-piece kernel had.
template <int D, int RW, int NP>
__device__ __forceinline__ void store_rows(const AttnArgs& a, const AttnBlock& b, const RowAccum<RW, NP>& acc) {
#pragma unroll
    for (int s = 0; s < RW; ++s) {
        const int r = s * k_attn_warps + b.warp;
        if (r >= b.nrows) continue;
        const RowHead th = row_head(a, b.g, b.row0 + r);
        const int64_t orow = int64_t(th.t) * a.heads + th.h;
        if (a.splits == 1) {
            const float inv = acc.l[s] > 0.0f ? 1.0f / acc.l[s] : 0.0f;
#pragma unroll
            for (int i = 0; i < NP; ++i) {
                const int c = b.lane + 32 * i;
                if (c < D / 2) {
                    store_elem(a.out, orow * D + 2 * c, acc.o[s][i].x * inv, a.out_type);
                    store_elem(a.out, orow * D + 2 * c + 1, acc.o[s][i].y * inv, a.out_type);
                }
            }
        } else {
            const int64_t idx = int64_t(b.split) * a.tokens * a.heads + orow;
            if (b.lane == 0) {
                a.ws_ml[2 * idx] = acc.m[s];
                a.ws_ml[2 * idx + 1] = acc.l[s];
            }
#pragma unroll
            for (int i = 0; i < NP; ++i) {
                const int c = b.lane + 32 * i;
                if (c < D / 2) *reinterpret_cast<float2*>(a.ws_acc + idx * D + 2 * c) = acc.o[s][i];
            }
        }
    }
}

// One block: br query rows of KV group blockIdx.y against its split blockIdx.z of the
// positions, tile by tile (the file's comment has the layout). The shared memory is declared
// here, once per block, and handed to the steps as pointers; every barrier is here too, reached
// by all threads alike (the steps hold none, only warp shuffles).
template <int D, typename TC, int RW>
__global__ void __launch_bounds__(k_attn_threads) attention_kernel(const AttnArgs a) {
    using S = AttnShape<D, TC, RW>;
    constexpr int np = k_lane_pairs<D>;

    RABBIT_DYNAMIC_SHARED(unsigned char, smem);
    float* q_s = reinterpret_cast<float*>(smem);                // [br, D] f32, pre-scaled
    float* p_s = reinterpret_cast<float*>(smem + S::q_bytes);   // [warps, RW, 32] f32
    TC* k_s = reinterpret_cast<TC*>(smem + S::q_bytes + S::p_bytes); // [32, D + pad] TC
    TC* v_s = S::shared_kv ? k_s : reinterpret_cast<TC*>(smem + S::q_bytes + S::p_bytes + S::tile_bytes);

    AttnBlock b;
    b.lane = threadIdx.x & 31;
    b.warp = threadIdx.x >> 5;
    b.g = blockIdx.y;
    b.split = blockIdx.z;
    b.row0 = blockIdx.x * S::br;
    b.nrows = min(S::br, a.rows - b.row0);

    load_query_tile<D, S::br>(q_s, a, b);
    int first[RW], last[RW];
    allowed_positions<RW>(a, b, first, last);
    const PositionRange range = split_positions(a, b);
    RowAccum<RW, np> acc;
    init_accum(acc);

    const TC* kg = static_cast<const TC*>(a.k) + int64_t(b.g) * a.cache_len * D; // [cache_len, D] TC
    const TC* vg = static_cast<const TC*>(a.v) + int64_t(b.g) * a.cache_len * D; // [cache_len, D] TC
    float* p_w = p_s + b.warp * RW * k_tile; // [RW, 32] f32, this warp's

    for (int j0 = range.lo; j0 < range.hi; j0 += k_tile) {
        const int nv = min(k_tile, range.hi - j0);
        load_tile<D, TC>(k_s, kg + int64_t(j0) * D, nv);
        if (!S::shared_kv) load_tile<D, TC>(v_s, vg + int64_t(j0) * D, nv);
        __syncthreads(); // q_s (written before the loop), K and V are in shared memory

        float sc[RW];
        tile_scores<D, TC, RW>(q_s, k_s, b, sc);
        softmax_update(a, b, sc, j0, nv, first, last, acc, p_w);
        if (S::shared_kv) {
            __syncthreads(); // every warp is done with K
            load_tile<D, TC>(v_s, vg + int64_t(j0) * D, nv);
            __syncthreads();
        } else {
            __syncwarp(); // p_w is read across lanes
        }
        accumulate_values<D, TC, RW>(p_w, v_s, nv, b.lane, acc);
        __syncthreads(); // before the next tile overwrites K, V and p
    }

    store_rows<D>(a, b, acc);
}

// One warp per output row (token, head): out = sum_s w_s acc_s / sum_s w_s l_s with
// w_s = exp2(m_s - max m); splits that saw no allowed position (m = -inf) weigh 0.
template <int D>
__global__ void __launch_bounds__(k_attn_threads)
    attention_merge_kernel(const float* __restrict__ ws_ml,  // [splits, total, 2] f32
                           const float* __restrict__ ws_acc, // [splits, total, D] f32
                           int splits, int64_t total, void* out, Elem out_type) { // out [total, D]
    constexpr int np = k_lane_pairs<D>;
    const int lane = threadIdx.x & 31;
    const int64_t R = int64_t(blockIdx.x) * k_attn_warps + (threadIdx.x >> 5);
    if (R >= total) return; // whole warps; no block barrier follows
    float mx = neg_inf();
    for (int s = lane; s < splits; s += 32) mx = fmaxf(mx, ws_ml[2 * (s * total + R)]);
    mx = warp_max(mx);
    float L = 0.0f;
    float2 o[np];
#pragma unroll
    for (int i = 0; i < np; ++i) o[i] = make_float2(0.0f, 0.0f);
    if (mx != neg_inf()) {
        for (int s = 0; s < splits; ++s) {
            const int64_t idx = s * total + R;
            const float ms = ws_ml[2 * idx];
            if (ms == neg_inf()) continue;
            const float w = exp2f(ms - mx);
            L += w * ws_ml[2 * idx + 1];
#pragma unroll
            for (int i = 0; i < np; ++i) {
                const int c = lane + 32 * i;
                if (c < D / 2) {
                    const float2 v = *reinterpret_cast<const float2*>(ws_acc + idx * D + 2 * c);
                    o[i].x = fmaf(w, v.x, o[i].x);
                    o[i].y = fmaf(w, v.y, o[i].y);
                }
            }
        }
    }
    const float inv = L > 0.0f ? 1.0f / L : 0.0f;
#pragma unroll
    for (int i = 0; i < np; ++i) {
        const int c = lane + 32 * i;
        if (c < D / 2) {
            store_elem(out, R * D + 2 * c, o[i].x * inv, out_type);
            store_elem(out, R * D + 2 * c + 1, o[i].y * inv, out_type);
        }
    }
}

template <int D, typename TC, int RW>
cudaError_t attention_run(const AttentionParams& p, int group, int rows, cudaStream_t stream) {
    using S = AttnShape<D, TC, RW>;
    const int64_t row_tiles = (rows + S::br - 1) / S::br;
    const int64_t total = int64_t(p.tokens) * p.heads;

    // Splits: enough blocks for two per multiprocessor, at least k_min_split_positions
    // positions each, and the partial results within the workspace.
    int64_t splits = 1;
    const int64_t blocks = row_tiles * p.kv_heads;
    if (p.workspace && p.sm_count > 0 && blocks < p.sm_count) {
        int64_t span = p.pos + p.tokens;
        if (p.window > 0 && p.window + p.tokens < span) span = p.window + p.tokens;
        const int64_t by_blocks = (2 * int64_t(p.sm_count) + blocks - 1) / blocks;
        const int64_t by_span = (span + k_min_split_positions - 1) / k_min_split_positions;
        const int64_t by_workspace = int64_t(k_attention_workspace / (size_t(total) * (D + 2) * sizeof(float)));
        splits = by_blocks < by_span ? by_blocks : by_span;
        if (by_workspace < splits) splits = by_workspace;
        if (splits > 65535) splits = 65535;
        if (splits < 1) splits = 1;
    }

    AttnArgs a;
    a.q = p.q;
    a.q_stride = p.q_stride;
    a.k = p.k_cache;
    a.v = p.v_cache;
    a.cache_len = p.cache_len;
    a.out = p.out;
    a.out_type = p.out_type;
    a.tokens = p.tokens;
    a.heads = p.heads;
    a.group = group;
    a.rows = rows;
    a.pos = int(p.pos);
    // A window that reaches position 0 for every token is no window (and fits an int).
    a.window = p.window > 0 && p.window < p.pos + p.tokens ? int(p.window) : 0;
    a.scale_log2 = p.scale * k_log2e;
    a.splits = int(splits);
    a.tree_mask = p.tree_mask;
    a.tree_pos = p.tree_pos;
    a.tree_words = p.tree_words;
    a.tree_base = int(p.tree_base);
    a.ws_ml = static_cast<float*>(p.workspace);
    a.ws_acc = splits > 1 ? a.ws_ml + splits * total * 2 : nullptr;

    // A shape beyond 48 KiB was opted in by attention_setup.
    const dim3 grid(unsigned(row_tiles), unsigned(p.kv_heads), unsigned(splits));
    RABBIT_LAUNCH(grid, k_attn_threads, S::smem, stream, attention_kernel<D, TC, RW>)(a);
    if (splits > 1) {
        const unsigned merge_blocks = unsigned((total + k_attn_warps - 1) / k_attn_warps);
        RABBIT_LAUNCH(merge_blocks, k_attn_threads, 0, stream, attention_merge_kernel<D>)(a.ws_ml, a.ws_acc, int(splits), total,
                                                                              p.out, p.out_type);
    }
    return cudaGetLastError();
}

template <int D>
cudaError_t attention_dim(const AttentionParams& p, cudaStream_t stream) {
    const int group = p.heads / p.kv_heads;
    const int64_t rows = int64_t(p.tokens) * group;
    if (rows * p.kv_heads > INT_MAX) return cudaErrorInvalidValue;
    return dispatch_elem(p.cache_type, [&](auto tag) {
        using TC = typename decltype(tag)::type;
        // 32 rows a block share each K/V tile among more rows (a prompt); 8 waste less for a
        // decode step's few rows. The larger shapes need the opt-in shared memory, which an
        // sm_75 (64 KiB) may not have for all of them; the smaller fit in 48 KiB everywhere.
        static_assert(AttnShape<D, TC, 2>::smem <= (48u << 10), "the small shape fits without opt-in");
        constexpr size_t big = AttnShape<D, TC, 8>::smem;
        if (rows > 8 && (big <= (48u << 10) || big <= p.smem_optin))
            return attention_run<D, TC, 8>(p, group, int(rows), stream);
        return attention_run<D, TC, 2>(p, group, int(rows), stream);
    });
}

// Opts the large shape of head size D in to the device's shared memory, for each cache type,
// when it needs more than 48 KiB and the device has it.
template <int D>
cudaError_t setup_dim(size_t optin) {
    auto one = [&](auto tag) {
        using TC = typename decltype(tag)::type;
        constexpr size_t smem = AttnShape<D, TC, 8>::smem;
        if (smem <= (48u << 10) || smem > optin) return cudaSuccess;
        return cudaFuncSetAttribute(attention_kernel<D, TC, 8>, cudaFuncAttributeMaxDynamicSharedMemorySize, int(smem));
    };
    for (Elem e : {Elem::f32, Elem::f16, Elem::bf16})
        if (const cudaError_t err = dispatch_elem(e, one); err != cudaSuccess) return err;
    return cudaSuccess;
}

// The head size of p among k_attention_head_dims[I..]: its kernels, or an error for none.
template <size_t I = 0>
cudaError_t attention_any_dim(const AttentionParams& p, cudaStream_t stream) {
    if constexpr (I == k_attention_head_dim_count) {
        return cudaErrorInvalidValue;
    } else {
        constexpr int D = k_attention_head_dims[I];
        if (p.head_dim == D) return attention_dim<D>(p, stream);
        return attention_any_dim<I + 1>(p, stream);
    }
}

// Every head size set up (each tried, whatever the others return); the first error, if any.
template <size_t... I>
cudaError_t setup_dims(size_t optin, std::index_sequence<I...>) {
    const cudaError_t errors[] = {setup_dim<k_attention_head_dims[I]>(optin)...};
    for (cudaError_t e : errors)
        if (e != cudaSuccess) return e;
    return cudaSuccess;
}

} // namespace

cudaError_t attention_setup(size_t smem_optin) {
    return setup_dims(smem_optin, std::make_index_sequence<k_attention_head_dim_count>{});
}

cudaError_t launch_attention(const AttentionParams& p, cudaStream_t stream) {
    if (!p.q || !p.k_cache || !p.v_cache || !p.out || p.tokens < 0 || p.heads <= 0 || p.kv_heads <= 0 ||
        p.kv_heads > 65535 || p.heads % p.kv_heads != 0 || p.pos < 0 || p.window < 0 || p.cache_len <= 0 ||
        p.pos + p.tokens > p.cache_len || p.pos + p.tokens > INT_MAX || p.q_stride < int64_t(p.heads) * p.head_dim ||
        !valid_elem(p.cache_type) || !valid_elem(p.out_type))
        return cudaErrorInvalidValue;
    if (p.tree_mask && (!p.tree_pos || p.tree_base < 0 || p.tree_base > p.pos ||
                        int64_t(p.tree_words) * 32 < p.pos + p.tokens - p.tree_base))
        return cudaErrorInvalidValue;
    // The tiles are read 16 bytes at a time.
    if (reinterpret_cast<uintptr_t>(p.k_cache) % 16 != 0 || reinterpret_cast<uintptr_t>(p.v_cache) % 16 != 0)
        return cudaErrorInvalidValue;
    if (p.tokens == 0) return cudaSuccess;
    // Small heads (tiny test models, tinystories-656k's 8) use the same kernel: every D is a
    // multiple of 8, so lanes past D / 2 output pairs simply hold nothing.
    return attention_any_dim(p, stream);
}

} // namespace rabbit
