// SPDX-License-Identifier: Apache-2.0
#include "moe.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

// One thread per token: a router has at most a few hundred experts and a token picks a few,
// so a sequential scan is short, and it computes exactly what route_tokens does on the host
// (the same max, exp, sum and order), which keeps ties and near-ties on the same side. The j-th
// pick is the best expert below pick j - 1 in the order (probability descending, index
// ascending), so nothing but the last pick is remembered.
__global__ void moe_route_kernel(const float* __restrict__ logits, // [tokens, experts] f32
                                 int tokens, int experts, int k, bool renormalise,
                                 int32_t* __restrict__ chosen,     // [tokens, k]
                                 float* __restrict__ weights) {    // [tokens, k] f32
    const int t = int(blockIdx.x) * int(blockDim.x) + int(threadIdx.x);
    if (t >= tokens) return;
    const float* z = logits + int64_t(t) * experts;
    float top = z[0];
    for (int e = 1; e < experts; ++e) top = fmaxf(top, z[e]);
    float sum = 0.0f;
    for (int e = 0; e < experts; ++e) sum += expf(z[e] - top);
    int last = -1;
    float last_p = 0.0f, kept = 0.0f;
    for (int j = 0; j < k; ++j) {
        int best = -1;
        float best_p = 0.0f;
        for (int e = 0; e < experts; ++e) {
            const float p = expf(z[e] - top) / sum;
            const bool below = last < 0 || p < last_p || (p == last_p && e > last);
            if (below && (best < 0 || p > best_p)) best = e, best_p = p;
        }
        chosen[int64_t(t) * k + j] = best;
        weights[int64_t(t) * k + j] = best_p;
        kept += best_p;
        last = best, last_p = best_p;
    }
    if (renormalise)
        for (int j = 0; j < k; ++j) weights[int64_t(t) * k + j] /= kept;
}

__global__ void gather_rows_kernel(const uint32_t* __restrict__ src, const int32_t* __restrict__ rows,
                                   int64_t count, int64_t words, uint32_t* __restrict__ dst) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count * words;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t j = i / words, w = i - j * words;
        dst[i] = src[int64_t(rows[j]) * words + w];
    }
}

__global__ void scatter_add_kernel(const float* __restrict__ y, const int32_t* __restrict__ rows,
                                   const float* __restrict__ weights, const float* __restrict__ scale, bool sigmoid,
                                   int64_t count, int64_t n, float* __restrict__ out) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count * n;
         i += int64_t(gridDim.x) * blockDim.x) {
        const int64_t j = i / n, d = i - j * n;
        float g = sigmoid ? 1.0f / (1.0f + expf(-weights[j])) : weights[j];
        if (scale) g *= scale[j];
        const int64_t row = rows ? rows[j] : j;
        out[row * n + d] += g * y[i];
    }
}

__global__ void fill_kernel(float* x, int64_t count, float value) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < count; i += int64_t(gridDim.x) * blockDim.x)
        x[i] = value;
}

} // namespace

cudaError_t launch_moe_route(const MoeRouteParams& p, cudaStream_t stream) {
    if (!p.logits || !p.chosen || !p.weights || p.tokens < 0 || p.experts <= 0 || p.experts > k_moe_max_experts ||
        p.k <= 0 || p.k > p.experts)
        return cudaErrorInvalidValue;
    if (p.tokens == 0) return cudaSuccess;
    constexpr int threads = 128;
    RABBIT_LAUNCH(unsigned((p.tokens + threads - 1) / threads), threads, 0, stream, moe_route_kernel)(
        p.logits, p.tokens, p.experts, p.k, p.renormalise, p.chosen, p.weights);
    return cudaGetLastError();
}

cudaError_t launch_gather_rows(const GatherRowsParams& p, cudaStream_t stream) {
    if (!p.src || !p.rows || !p.dst || p.count < 0 || p.row_bytes <= 0 || p.row_bytes % 4) return cudaErrorInvalidValue;
    if (p.count == 0) return cudaSuccess;
    constexpr int threads = 256;
    const int64_t words = p.row_bytes / 4;
    RABBIT_LAUNCH(grid_for(p.count * words, threads), threads, 0, stream, gather_rows_kernel)(
        static_cast<const uint32_t*>(p.src), p.rows, p.count, words, static_cast<uint32_t*>(p.dst));
    return cudaGetLastError();
}

cudaError_t launch_scatter_add(const ScatterAddParams& p, cudaStream_t stream) {
    if (!p.y || !p.weights || !p.out || p.count < 0 || p.n <= 0) return cudaErrorInvalidValue;
    if (p.count == 0) return cudaSuccess;
    constexpr int threads = 256;
    RABBIT_LAUNCH(grid_for(p.count * p.n, threads), threads, 0, stream, scatter_add_kernel)(
        p.y, p.rows, p.weights, p.scale, p.sigmoid, p.count, p.n, p.out);
    return cudaGetLastError();
}

cudaError_t launch_fill_f32(float* x, int64_t count, float value, cudaStream_t stream) {
    if (!x || count < 0) return cudaErrorInvalidValue;
    if (count == 0) return cudaSuccess;
    constexpr int threads = 256;
    RABBIT_LAUNCH(grid_for(count, threads), threads, 0, stream, fill_kernel)(x, count, value);
    return cudaGetLastError();
}

} // namespace rabbit
