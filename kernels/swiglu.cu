// SPDX-License-Identifier: Apache-2.0
#include "swiglu.cuh"

#include "elem_device.cuh"

#include <cstdint>

namespace rabbit {

namespace {

// Element-wise over [tokens, inter], grid-stride. silu(g) = g / (1 + exp(-g)) as the CPU
// computes it (expf, not the fast __expf, to stay within float rounding of it).
template <typename TO>
__global__ void swiglu_kernel(const float* __restrict__ gate_up, // [tokens, 2 inter] f32
                              int64_t count, int inter,
                              TO* __restrict__ out) { // [tokens, inter] TO
    for (int64_t k = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; k < count; k += int64_t(gridDim.x) * blockDim.x) {
        const int64_t t = k / inter, i = k - t * inter;
        const float g = gate_up[t * 2 * inter + i];
        const float u = gate_up[t * 2 * inter + inter + i];
        out[k] = from_f32<TO>(g / (1.0f + expf(-g)) * u);
    }
}

// f16 rows that would overflow: one block per row. The values first go to the gate columns
// (each element stays with its thread), then the block's largest magnitude decides the row's
// power-of-2 divisor, and the thread writes its elements divided by it.
constexpr float k_f16_row_max = 32768.0f;

__global__ void swiglu_scaled_kernel(float* gate_up, // [tokens, 2 inter] f32; the gate half becomes scratch
                                     int inter,
                                     __half* __restrict__ out,   // [tokens, inter] f16
                                     float* __restrict__ row_scale) { // [tokens] f32
    RABBIT_SHARED(unsigned long long, scratch, 32);
    const int64_t t = blockIdx.x;
    float* g = gate_up + t * 2 * inter;
    const float* u = g + inter;
    float mx = 0.0f;
    for (int i = threadIdx.x; i < inter; i += blockDim.x) {
        const float v = g[i] / (1.0f + expf(-g[i])) * u[i];
        g[i] = v;
        mx = fmaxf(mx, fabsf(v));
    }
    // Non-negative floats order as their bits do (a NaN above every number, and it stays one).
    mx = __uint_as_float(uint32_t(block_max_u64(__float_as_uint(mx), scratch)));
    float scale = 1.0f;
    while (mx / scale > k_f16_row_max) scale *= 2.0f; // at most 2^105 for a finite f32
    for (int i = threadIdx.x; i < inter; i += blockDim.x) out[t * inter + i] = __float2half_rn(g[i] / scale);
    if (threadIdx.x == 0) row_scale[t] = scale;
}

} // namespace

cudaError_t launch_swiglu(const SwigluParams& p, cudaStream_t stream) {
    if (!p.gate_up || !p.out || p.tokens < 0 || p.inter <= 0 || !valid_elem(p.out_type) ||
        (p.row_scale && p.out_type != Elem::f16))
        return cudaErrorInvalidValue;
    const int64_t count = int64_t(p.tokens) * p.inter;
    if (count == 0) return cudaSuccess;
    constexpr int threads = 256;
    if (p.row_scale) {
        RABBIT_LAUNCH(unsigned(p.tokens), threads, 0, stream, swiglu_scaled_kernel)(p.gate_up, p.inter,
                                                                                 static_cast<__half*>(p.out), p.row_scale);
        return cudaGetLastError();
    }
    return dispatch_elem(p.out_type, [&](auto tag) {
        using TO = typename decltype(tag)::type;
        RABBIT_LAUNCH(grid_for(count, threads), threads, 0, stream, swiglu_kernel<TO>)(p.gate_up, count, p.inter,
                                                                            static_cast<TO*>(p.out));
        return cudaGetLastError();
    });
}

} // namespace rabbit
