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

} // namespace

cudaError_t launch_swiglu(const SwigluParams& p, cudaStream_t stream) {
    if (!p.gate_up || !p.out || p.tokens < 0 || p.inter <= 0 || !valid_elem(p.out_type)) return cudaErrorInvalidValue;
    const int64_t count = int64_t(p.tokens) * p.inter;
    if (count == 0) return cudaSuccess;
    constexpr int threads = 256;
    return dispatch_elem(p.out_type, [&](auto tag) {
        using TO = typename decltype(tag)::type;
        RABBIT_LAUNCH(grid_for(count, threads), threads, 0, stream, swiglu_kernel<TO>)(p.gate_up, count, p.inter,
                                                                            static_cast<TO*>(p.out));
        return cudaGetLastError();
    });
}

} // namespace rabbit
