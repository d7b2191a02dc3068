// SPDX-License-Identifier: Apache-2.0
#include "rmsnorm.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

// One block per row. The first pass adds the residual (written back) and sums the squares;
// the second reads x again (each thread its own elements, so no barrier is needed for them;
// they are in L1/L2) and writes weight * (x * inv) as the CPU does.
template <typename TO>
__global__ void rmsnorm_kernel(float* x,                       // [rows, n] f32
                               const float* __restrict__ delta,  // [rows, n] f32 or null
                               const float* __restrict__ delta_scale, // [rows] f32 or null
                               const float* __restrict__ bias,   // [n] f32 or null
                               const float* __restrict__ weight, // [n] f32
                               float eps, int n,
                               TO* out) { // [rows, n] TO (may be x itself when TO is f32)
    RABBIT_SHARED(float, scratch, 32);
    const int64_t row = blockIdx.x;
    float* xr = x + row * n;
    float ss = 0.0f;
    if (delta) {
        const float* dr = delta + row * n;
        const float ds = delta_scale ? delta_scale[row] : 1.0f; // a power of 2: exact
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            // The CPU adds the projection's bias to its output first, then the output to x.
            const float d = bias ? dr[i] * ds + bias[i] : dr[i] * ds;
            const float v = xr[i] + d;
            xr[i] = v;
            ss += v * v;
        }
    } else {
        for (int i = threadIdx.x; i < n; i += blockDim.x) {
            const float v = xr[i];
            ss += v * v;
        }
    }
    ss = block_sum(ss, scratch);
    const float inv = 1.0f / sqrtf(ss / float(n) + eps);
    TO* orow = out + row * n;
    for (int i = threadIdx.x; i < n; i += blockDim.x) orow[i] = from_f32<TO>(weight[i] * (xr[i] * inv));
}

} // namespace

cudaError_t launch_rmsnorm(const RmsNormParams& p, cudaStream_t stream) {
    if (!p.x || !p.weight || !p.out || p.rows < 0 || p.n <= 0 || (p.bias && !p.delta) || (p.delta_scale && !p.delta) ||
        !valid_elem(p.out_type))
        return cudaErrorInvalidValue;
    if (p.rows == 0) return cudaSuccess;
    // About four elements a thread, whole warps, at most 1024 threads (rows of 16384 loop).
    int threads = (p.n / 4 + 31) / 32 * 32;
    threads = threads < 32 ? 32 : threads > 1024 ? 1024 : threads;
    return dispatch_elem(p.out_type, [&](auto tag) {
        using TO = typename decltype(tag)::type;
        RABBIT_LAUNCH(unsigned(p.rows), threads, 0, stream, rmsnorm_kernel<TO>)(p.x, p.delta, p.delta_scale, p.bias, p.weight, p.eps, p.n,
                                                                      static_cast<TO*>(p.out));
        return cudaGetLastError();
    });
}

} // namespace rabbit
