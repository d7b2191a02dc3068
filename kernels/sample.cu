// SPDX-License-Identifier: Apache-2.0
#include "sample.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

// A logit and its index as one 64-bit key whose unsigned order is the sampler's order: the
// value in the upper half, mapped so that larger floats give larger integers, and the index
// inverted in the lower half, so that among equal values the lower index is the larger key.
// -0 is folded onto +0 because the CPU compares them as equal. Keys are unique, so sorting
// them is a stable sort; 0 is below every real key (the padding).
__device__ __forceinline__ unsigned long long logit_key(float v, uint32_t index) {
    uint32_t u = __float_as_uint(v);
    if ((u << 1) == 0) u = 0;
    const uint32_t ord = (u & 0x80000000u) ? ~u : (u | 0x80000000u);
    return (static_cast<unsigned long long>(ord) << 32) | (0xffffffffu - index);
}

__device__ __forceinline__ int32_t key_index(unsigned long long key) {
    return int32_t(0xffffffffu - static_cast<uint32_t>(key));
}

// Top-k sorts chunks of k_topk_chunk keys in shared memory (32 KiB) with a bitonic network and
// keeps each chunk's first k; chunks of survivors are sorted again until one chunk remains.
// The sizes (and the argmax's) are in workspace.h, which the planner reads too.
constexpr int k_topk_threads = 1024;

__global__ void penalize_kernel(float* logits, const int32_t* __restrict__ ids, int n_ids, float penalty) {
    const int i = blockIdx.x * blockDim.x + threadIdx.x;
    if (i >= n_ids) return;
    float& l = logits[ids[i]]; // ids are distinct: no two threads touch one logit
    l = l > 0 ? l / penalty : l * penalty;
}

__global__ void temperature_kernel(float* logits, int64_t n, float temperature) {
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x)
        logits[i] = logits[i] / temperature;
}

// Each block's largest key over a grid-stride share of the logits.
__global__ void argmax_partial_kernel(const float* __restrict__ logits, int64_t n,
                                      unsigned long long* __restrict__ partial) { // [gridDim.x]
    RABBIT_SHARED(unsigned long long, scratch, 32);
    unsigned long long best = 0;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += int64_t(gridDim.x) * blockDim.x) {
        const unsigned long long k = logit_key(logits[i], uint32_t(i));
        best = k > best ? k : best;
    }
    best = block_max_u64(best, scratch);
    if (threadIdx.x == 0) partial[blockIdx.x] = best;
}

__global__ void argmax_final_kernel(const unsigned long long* __restrict__ partial, int blocks, int32_t* out) {
    RABBIT_SHARED(unsigned long long, scratch, 32);
    unsigned long long best = 0;
    for (int i = threadIdx.x; i < blocks; i += blockDim.x) best = partial[i] > best ? partial[i] : best;
    best = block_max_u64(best, scratch);
    if (threadIdx.x == 0) out[0] = key_index(best);
}

// Sorts the block's chunk of keys descending: the logits [m] (keys made here) or earlier
// survivors [m]. Not final: writes the chunk's first k keys to out_keys[blockIdx.x * k ...].
// Final (one block): writes the first k as ids and values (read back from the logits, so
// that a -0 stays -0).
template <bool FROM_LOGITS, bool FINAL>
__global__ void __launch_bounds__(k_topk_threads)
    topk_chunk_kernel(const float* __restrict__ logits, const unsigned long long* __restrict__ in_keys, int64_t m,
                      int k, unsigned long long* __restrict__ out_keys, float* __restrict__ values,
                      int32_t* __restrict__ ids) {
    RABBIT_SHARED(unsigned long long, keys, k_topk_chunk);
    const int64_t base = int64_t(blockIdx.x) * k_topk_chunk;
    for (int i = threadIdx.x; i < k_topk_chunk; i += blockDim.x) {
        const int64_t g = base + i;
        unsigned long long key = 0;
        if (g < m) key = FROM_LOGITS ? logit_key(logits[g], uint32_t(g)) : in_keys[g];
        keys[i] = key;
    }
    __syncthreads();
    // Bitonic network; the final merge (size == chunk) runs every pair descending.
    for (int size = 2; size <= k_topk_chunk; size <<= 1) {
        for (int stride = size >> 1; stride > 0; stride >>= 1) {
            for (int i = threadIdx.x; i < k_topk_chunk; i += blockDim.x) {
                const int j = i ^ stride;
                if (j > i) {
                    const unsigned long long a = keys[i], b = keys[j];
                    const bool descending = (i & size) == 0;
                    if (descending ? a < b : a > b) {
                        keys[i] = b;
                        keys[j] = a;
                    }
                }
            }
            __syncthreads();
        }
    }
    for (int i = threadIdx.x; i < k; i += blockDim.x) {
        const unsigned long long key = keys[i];
        if (FINAL) {
            const int32_t id = key_index(key);
            ids[i] = id;
            values[i] = logits[id];
        } else {
            out_keys[int64_t(blockIdx.x) * k + i] = key;
        }
    }
}

} // namespace

cudaError_t launch_penalize(float* logits, int64_t n, const int32_t* ids, int n_ids, float penalty,
                            cudaStream_t stream) {
    if (!logits || n <= 0 || n_ids < 0 || (n_ids > 0 && !ids)) return cudaErrorInvalidValue;
    if (n_ids == 0) return cudaSuccess;
    constexpr int threads = 256;
    RABBIT_LAUNCH(unsigned((n_ids + threads - 1) / threads), threads, 0, stream, penalize_kernel)(logits, ids, n_ids, penalty);
    return cudaGetLastError();
}

cudaError_t launch_temperature(float* logits, int64_t n, float temperature, cudaStream_t stream) {
    if (!logits || n <= 0) return cudaErrorInvalidValue;
    constexpr int threads = 256;
    RABBIT_LAUNCH(grid_for(n, threads), threads, 0, stream, temperature_kernel)(logits, n, temperature);
    return cudaGetLastError();
}

cudaError_t launch_argmax(const float* logits, int64_t n, int32_t* out, void* workspace, cudaStream_t stream) {
    if (!logits || !out || !workspace || n <= 0 || n > 0x7fffffff) return cudaErrorInvalidValue;
    auto* partial = static_cast<unsigned long long*>(workspace);
    const int blocks = argmax_blocks(n);
    RABBIT_LAUNCH(blocks, k_argmax_threads, 0, stream, argmax_partial_kernel)(logits, n, partial);
    RABBIT_LAUNCH(1, 1024, 0, stream, argmax_final_kernel)(partial, blocks, out);
    return cudaGetLastError();
}

cudaError_t launch_topk(const float* logits, int64_t n, int k, float* values, int32_t* ids, void* workspace,
                        cudaStream_t stream) {
    if (!logits || !values || !ids || n <= 0 || n > 0x7fffffff || k < 1 || k > k_topk_max || k > n)
        return cudaErrorInvalidValue;
    const int64_t chunks = topk_chunks(n);
    if (chunks == 1) {
        RABBIT_LAUNCH(1, k_topk_threads, 0, stream, topk_chunk_kernel<true, true>)(logits, nullptr, n, k, nullptr, values, ids);
        return cudaGetLastError();
    }
    if (!workspace) return cudaErrorInvalidValue;
    // Two buffers of survivors, each sized for the first pass (chunks * k_topk_max keys).
    auto* a = static_cast<unsigned long long*>(workspace);
    auto* b = a + chunks * k_topk_max;
    RABBIT_LAUNCH(unsigned(chunks), k_topk_threads, 0, stream, topk_chunk_kernel<true, false>)(logits, nullptr, n, k, a, nullptr,
                                                                                   nullptr);
    int64_t m = chunks * k; // survivors; each chunk's first k hold every global top-k member it had
    while (m > k_topk_chunk) {
        const int64_t c = (m + k_topk_chunk - 1) / k_topk_chunk;
        RABBIT_LAUNCH(unsigned(c), k_topk_threads, 0, stream, topk_chunk_kernel<false, false>)(logits, a, m, k, b, nullptr,
                                                                                   nullptr);
        m = c * k; // k <= 256 = chunk / 16: at least 16 times fewer, plus one chunk's k
        unsigned long long* t = a;
        a = b;
        b = t;
    }
    RABBIT_LAUNCH(1, k_topk_threads, 0, stream, topk_chunk_kernel<false, true>)(logits, a, m, k, nullptr, values, ids);
    return cudaGetLastError();
}

} // namespace rabbit
