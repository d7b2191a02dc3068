// SPDX-License-Identifier: Apache-2.0
#include "convert.cuh"

#include "elem_device.cuh"

namespace rabbit {

namespace {

__device__ __forceinline__ uint16_t bf16_bits_to_f16_bits(uint32_t b) {
    // Exact in f32; __float2half_rn rounds to nearest even, beyond +-65504 to +-inf.
    return __half_as_ushort(__float2half_rn(__uint_as_float(b << 16)));
}

// In place: every element is read and rewritten by one thread, so no ordering is needed.
// The 16-byte-aligned body goes 8 elements at a time (grid-stride); the unaligned head and
// the tail, fewer than 8 elements each, go one at a time in the first block.
__global__ void bf16_to_f16_kernel(uint16_t* data, // [count] bf16 -> f16
                                   int64_t head, int64_t vectors, int64_t count) {
    const int64_t stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t v = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; v < vectors; v += stride) {
        uint4* body = reinterpret_cast<uint4*>(data + head); // aligned when there is a body
        uint4 u = body[v];
        uint32_t* w = reinterpret_cast<uint32_t*>(&u);
#pragma unroll
        for (int k = 0; k < 4; ++k)
            w[k] = uint32_t(bf16_bits_to_f16_bits(w[k] & 0xffffu)) | (uint32_t(bf16_bits_to_f16_bits(w[k] >> 16)) << 16);
        body[v] = u;
    }
    if (blockIdx.x == 0) {
        const int64_t tail = head + vectors * 8;
        if (threadIdx.x < head) data[threadIdx.x] = bf16_bits_to_f16_bits(data[threadIdx.x]);
        if (tail + threadIdx.x < count) data[tail + threadIdx.x] = bf16_bits_to_f16_bits(data[tail + threadIdx.x]);
    }
}

// One thread per element, grid-stride: a few MiB once per prefill part, bound by memory.
__global__ void rows_to_elem_kernel(const float* src, // rows at src + r * src_stride
                                    int64_t src_stride,
                                    void* dst,          // [rows, cols] dst_type
                                    Elem dst_type, int64_t rows, int64_t cols) {
    const int64_t n = rows * cols, stride = int64_t(gridDim.x) * blockDim.x;
    for (int64_t i = int64_t(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
        store_elem(dst, i, src[(i / cols) * src_stride + i % cols], dst_type);
}

} // namespace

cudaError_t launch_rows_to_elem(const RowsToElemParams& p, cudaStream_t stream) {
    if (p.rows < 0 || p.cols < 0 || p.src_stride < p.cols) return cudaErrorInvalidValue;
    if (p.rows == 0 || p.cols == 0) return cudaSuccess;
    if (!p.src || !p.dst) return cudaErrorInvalidValue;
    constexpr int threads = 256;
    RABBIT_LAUNCH(grid_for(p.rows * p.cols, threads), threads, 0, stream, rows_to_elem_kernel)(
        p.src, p.src_stride, p.dst, p.dst_type, p.rows, p.cols);
    return cudaGetLastError();
}

cudaError_t launch_bf16_to_f16(void* data, int64_t count, cudaStream_t stream) {
    if (count < 0 || (count > 0 && !data) || reinterpret_cast<uintptr_t>(data) % 2 != 0) return cudaErrorInvalidValue;
    if (count == 0) return cudaSuccess;
    // Elements before the first 16-byte boundary, then whole vectors of 8, then the rest.
    int64_t head = int64_t((16 - reinterpret_cast<uintptr_t>(data) % 16) % 16 / 2);
    if (head > count) head = count;
    const int64_t vectors = (count - head) / 8;
    constexpr int threads = 256;
    RABBIT_LAUNCH(grid_for(vectors, threads), threads, 0, stream, bf16_to_f16_kernel)(static_cast<uint16_t*>(data), head,
                                                                          vectors, count);
    return cudaGetLastError();
}

} // namespace rabbit
