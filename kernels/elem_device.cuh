// SPDX-License-Identifier: Apache-2.0
// Device-side helpers the kernels share: f32 <-> f16/bf16 loads and stores, warp and block
// reductions, and the dispatch from a run-time Elem to a template's element type.
// Only for .cu files (nvcc); the host code sees elem.cuh.
#pragma once

#include "elem.cuh"
#include "launch.cuh"

#include <cuda_bf16.h>
#include <cuda_fp16.h>

#include <cstdint>

namespace rabbit {

// ---- element conversions ----------------------------------------------------------------
// bf16 <-> f32 through the functions of cuda_bf16.h that exist on every architecture (sm_75
// has no bf16 arithmetic, but these are bit manipulations there).
__device__ __forceinline__ float to_f32(float v) { return v; }
__device__ __forceinline__ float to_f32(__half v) { return __half2float(v); }
__device__ __forceinline__ float to_f32(__nv_bfloat16 v) { return __bfloat162float(v); }

template <typename T>
__device__ __forceinline__ T from_f32(float v);
template <>
__device__ __forceinline__ float from_f32<float>(float v) {
    return v;
}
// f16 saturates: a value beyond +-65504 (an activation of a model made for bf16) becomes the
// largest f16, not an infinity that would turn the next product into NaN. NaN stays NaN.
__device__ __forceinline__ __half f32_to_f16_saturated(float v) {
    return __float2half_rn(v > 65504.0f ? 65504.0f : v < -65504.0f ? -65504.0f : v);
}
template <>
__device__ __forceinline__ __half from_f32<__half>(float v) {
    return f32_to_f16_saturated(v);
}
template <>
__device__ __forceinline__ __nv_bfloat16 from_f32<__nv_bfloat16>(float v) {
    return __float2bfloat16_rn(v);
}

// Two adjacent elements as floats; p aligned to 2 elements.
__device__ __forceinline__ float2 load2_f32(const float* p) { return *reinterpret_cast<const float2*>(p); }
__device__ __forceinline__ float2 load2_f32(const __half* p) {
    return __half22float2(*reinterpret_cast<const __half2*>(p));
}
__device__ __forceinline__ float2 load2_f32(const __nv_bfloat16* p) {
    // bf16 is the upper half of an f32: element 0 is the low 16 bits (little endian).
    const uint32_t u = *reinterpret_cast<const uint32_t*>(p);
    return make_float2(__uint_as_float(u << 16), __uint_as_float(u & 0xffff0000u));
}

// Four adjacent elements as floats; p aligned to 16 bytes for f32, 8 bytes for 16-bit types.
__device__ __forceinline__ float4 load4_f32(const float* p) { return *reinterpret_cast<const float4*>(p); }
__device__ __forceinline__ float4 load4_f32(const __half* p) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    const float2 a = __half22float2(*reinterpret_cast<const __half2*>(&u.x));
    const float2 b = __half22float2(*reinterpret_cast<const __half2*>(&u.y));
    return make_float4(a.x, a.y, b.x, b.y);
}
__device__ __forceinline__ float4 load4_f32(const __nv_bfloat16* p) {
    const uint2 u = *reinterpret_cast<const uint2*>(p);
    return make_float4(__uint_as_float(u.x << 16), __uint_as_float(u.x & 0xffff0000u), __uint_as_float(u.y << 16),
                       __uint_as_float(u.y & 0xffff0000u));
}

// out[i] = v in the run-time type `type`, for outputs whose type is not worth a template.
__device__ __forceinline__ void store_elem(void* out, int64_t i, float v, Elem type) {
    switch (type) {
    case Elem::f32: static_cast<float*>(out)[i] = v; break;
    case Elem::f16: static_cast<__half*>(out)[i] = f32_to_f16_saturated(v); break;
    case Elem::bf16: static_cast<__nv_bfloat16*>(out)[i] = __float2bfloat16_rn(v); break;
    }
}

// ---- reductions --------------------------------------------------------------------------
__device__ __forceinline__ float warp_sum(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float warp_max(float v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

__device__ __forceinline__ unsigned long long warp_max_u64(unsigned long long v) {
#pragma unroll
    for (int o = 16; o > 0; o >>= 1) {
        const unsigned long long w = __shfl_xor_sync(0xffffffffu, v, o);
        v = w > v ? w : v;
    }
    return v;
}

// The sum over the block, returned to every thread. blockDim.x is a multiple of 32 (at most
// 1024); scratch is __shared__ float[32]. Every thread of the block must call it; it may be
// called again right away (the last barrier protects scratch).
__device__ __forceinline__ float block_sum(float v, float* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_sum(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? scratch[lane] : 0.0f;
        v = warp_sum(v);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    v = scratch[0];
    __syncthreads();
    return v;
}

// The same for the maximum of 64-bit keys.
__device__ __forceinline__ unsigned long long block_max_u64(unsigned long long v, unsigned long long* scratch) {
    const int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, warps = blockDim.x >> 5;
    v = warp_max_u64(v);
    if (lane == 0) scratch[warp] = v;
    __syncthreads();
    if (warp == 0) {
        v = lane < warps ? scratch[lane] : 0ull;
        v = warp_max_u64(v);
        if (lane == 0) scratch[0] = v;
    }
    __syncthreads();
    v = scratch[0];
    __syncthreads();
    return v;
}

// ---- dispatch ----------------------------------------------------------------------------
template <typename T>
struct ElemTag {
    using type = T;
};

// Calls f(ElemTag<T>{}) with T the element type of e; an unknown value is an invalid argument.
template <typename F>
inline cudaError_t dispatch_elem(Elem e, F&& f) {
    switch (e) {
    case Elem::f32: return f(ElemTag<float>{});
    case Elem::f16: return f(ElemTag<__half>{});
    case Elem::bf16: return f(ElemTag<__nv_bfloat16>{});
    }
    return cudaErrorInvalidValue;
}

inline bool valid_elem(Elem e) { return e == Elem::f32 || e == Elem::f16 || e == Elem::bf16; }

// Blocks of `threads` to cover `count` items, capped for grid-stride loops.
inline unsigned grid_for(int64_t count, int threads, int64_t cap = 65536) {
    int64_t b = (count + threads - 1) / threads;
    if (b > cap) b = cap;
    if (b < 1) b = 1;
    return unsigned(b);
}

} // namespace rabbit
