// SPDX-License-Identifier: Apache-2.0
// Device-side decoding of GGUF blocks, 32 elements at a time: decode32<T>(row, s, w) writes the
// f32 values of elements [32 s, 32 s + 32) of a row of type T. A k-quant super-block (256
// elements) is 8 such groups, so every type splits a row into the same 32-element pieces and
// the kernels hand one piece to a lane. Bytes are read one at a time: blocks are only 2-byte
// aligned (18, 20, 22 ... bytes), and a warp's lanes read neighbouring blocks, so the warp
// reads a contiguous span of the row that the L1 cache serves in whole lines.
// Only for .cu files (nvcc); the layouts are src/common/quant.h's.
#pragma once

#include "elem_device.cuh"
#include "quant.cuh"

namespace rabbit {

__device__ __forceinline__ float f16_at(const uint8_t* p) {
    return __half2float(__ushort_as_half((unsigned short)(unsigned(p[0]) | (unsigned(p[1]) << 8))));
}

template <WType T>
struct Blocks; // bytes per block and groups of 32 per block, per type

#define RABBIT_BLOCKS(type, bytes, groups) \
    template <>                            \
    struct Blocks<WType::type> {           \
        static constexpr int size = bytes; \
        static constexpr int per = groups; \
    }
RABBIT_BLOCKS(q8_0, 34, 1);
RABBIT_BLOCKS(q4_0, 18, 1);
RABBIT_BLOCKS(q4_1, 20, 1);
RABBIT_BLOCKS(q5_0, 22, 1);
RABBIT_BLOCKS(q5_1, 24, 1);
RABBIT_BLOCKS(q2_k, 84, 8);
RABBIT_BLOCKS(q3_k, 110, 8);
RABBIT_BLOCKS(q4_k, 144, 8);
RABBIT_BLOCKS(q5_k, 176, 8);
RABBIT_BLOCKS(q6_k, 210, 8);
#undef RABBIT_BLOCKS

// Group g of block b (g = 0 for the 32-element types).
template <WType T>
__device__ __forceinline__ void decode_group(const uint8_t* b, int g, float* w);

template <>
__device__ __forceinline__ void decode_group<WType::q8_0>(const uint8_t* b, int, float* w) {
    const float d = f16_at(b);
#pragma unroll
    for (int i = 0; i < 32; ++i) w[i] = d * float(int8_t(b[2 + i]));
}

template <>
__device__ __forceinline__ void decode_group<WType::q4_0>(const uint8_t* b, int, float* w) {
    const float d = f16_at(b);
    const uint8_t* qs = b + 2;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        w[j] = d * float(int(qs[j] & 15) - 8);
        w[j + 16] = d * float(int(qs[j] >> 4) - 8);
    }
}

template <>
__device__ __forceinline__ void decode_group<WType::q4_1>(const uint8_t* b, int, float* w) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint8_t* qs = b + 4;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        w[j] = d * float(qs[j] & 15) + m;
        w[j + 16] = d * float(qs[j] >> 4) + m;
    }
}

__device__ __forceinline__ uint32_t u32_at(const uint8_t* p) {
    return uint32_t(p[0]) | (uint32_t(p[1]) << 8) | (uint32_t(p[2]) << 16) | (uint32_t(p[3]) << 24);
}

template <>
__device__ __forceinline__ void decode_group<WType::q5_0>(const uint8_t* b, int, float* w) {
    const float d = f16_at(b);
    const uint32_t qh = u32_at(b + 2);
    const uint8_t* qs = b + 6;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        w[j] = d * float(int((qs[j] & 15) | (((qh >> j) & 1) << 4)) - 16);
        w[j + 16] = d * float(int((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) - 16);
    }
}

template <>
__device__ __forceinline__ void decode_group<WType::q5_1>(const uint8_t* b, int, float* w) {
    const float d = f16_at(b), m = f16_at(b + 2);
    const uint32_t qh = u32_at(b + 4);
    const uint8_t* qs = b + 8;
#pragma unroll
    for (int j = 0; j < 16; ++j) {
        w[j] = d * float((qs[j] & 15) | (((qh >> j) & 1) << 4)) + m;
        w[j + 16] = d * float((qs[j] >> 4) | (((qh >> (j + 16)) & 1) << 4)) + m;
    }
}

// Q2_K and Q3_K: group g is half n = g / 4 of the block, bit pair j = g % 4 of its 32 bytes of
// qs; its two halves of 16 have scales 8 n + 2 j and the next.
template <>
__device__ __forceinline__ void decode_group<WType::q2_k>(const uint8_t* b, int g, float* w) {
    const uint8_t* scales = b;
    const uint8_t* qs = b + 16 + 32 * (g / 4);
    const float d = f16_at(b + 80), dmin = f16_at(b + 82);
    const int shift = 2 * (g % 4), s0 = 8 * (g / 4) + 2 * (g % 4);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const uint8_t sc = scales[s0 + h];
        const float dl = d * float(sc & 15), ml = dmin * float(sc >> 4);
#pragma unroll
        for (int l = 0; l < 16; ++l) w[16 * h + l] = dl * float((qs[16 * h + l] >> shift) & 3) - ml;
    }
}

// Q3_K's 16 six-bit scales: the low 4 bits in bytes 0..7 (nibble i / 8), the high 2 bits in
// bytes 8..11 (pair i / 4), stored plus 32.
__device__ __forceinline__ int q3_k_scale(const uint8_t* s, int i) {
    const int low = (s[i % 8] >> (4 * (i / 8))) & 15, high = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
    return (low | (high << 4)) - 32;
}

template <>
__device__ __forceinline__ void decode_group<WType::q3_k>(const uint8_t* b, int g, float* w) {
    const uint8_t* hmask = b;
    const uint8_t* qs = b + 32 + 32 * (g / 4);
    const float d = f16_at(b + 108);
    const int shift = 2 * (g % 4), s0 = 8 * (g / 4) + 2 * (g % 4);
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const float dl = d * float(q3_k_scale(b + 96, s0 + h));
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const int i = 16 * h + l;
            const int q = int((qs[i] >> shift) & 3) - (((hmask[i] >> g) & 1) ? 0 : 4);
            w[i] = dl * float(q);
        }
    }
}

// Q4_K and Q5_K: the 6-bit scale and min of group j (common/quant.h's k_scale_min).
__device__ __forceinline__ void k_scale_min_dev(int j, const uint8_t* q, int* sc, int* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 15) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

// Group g: the low (g even) or high nibbles of qs bytes [32 (g / 2), +32).
template <>
__device__ __forceinline__ void decode_group<WType::q4_k>(const uint8_t* b, int g, float* w) {
    int sc = 0, m = 0;
    k_scale_min_dev(g, b + 4, &sc, &m);
    const float dl = f16_at(b) * float(sc), ml = f16_at(b + 2) * float(m);
    const uint8_t* qs = b + 16 + 32 * (g / 2);
    const int shift = 4 * (g % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) w[l] = dl * float((qs[l] >> shift) & 15) - ml;
}

// As Q4_K, with the fifth bit of element l of group g in bit g of qh[l].
template <>
__device__ __forceinline__ void decode_group<WType::q5_k>(const uint8_t* b, int g, float* w) {
    int sc = 0, m = 0;
    k_scale_min_dev(g, b + 4, &sc, &m);
    const float dl = f16_at(b) * float(sc), ml = f16_at(b + 2) * float(m);
    const uint8_t* qh = b + 16;
    const uint8_t* qs = b + 48 + 32 * (g / 2);
    const int shift = 4 * (g % 2);
#pragma unroll
    for (int l = 0; l < 32; ++l) w[l] = dl * float(((qs[l] >> shift) & 15) | (((qh[l] >> g) & 1) << 4)) - ml;
}

// Q6_K: group g is half n = g / 4, quarter k = g % 4 of it: low 4 bits from ql byte
// 64 n + 32 (k & 1) + l (the high nibble when k >= 2), high 2 bits from qh byte 32 n + l
// (pair k), scale 8 n + 2 k + l / 16.
template <>
__device__ __forceinline__ void decode_group<WType::q6_k>(const uint8_t* b, int g, float* w) {
    const int n = g / 4, k = g % 4;
    const uint8_t* ql = b + 64 * n + 32 * (k & 1);
    const uint8_t* qh = b + 128 + 32 * n;
    const int8_t* scales = reinterpret_cast<const int8_t*>(b + 192) + 8 * n + 2 * k;
    const float d = f16_at(b + 208);
    const int lshift = k >= 2 ? 4 : 0, hshift = 2 * k;
#pragma unroll
    for (int h = 0; h < 2; ++h) {
        const float dl = d * float(scales[h]);
#pragma unroll
        for (int l = 0; l < 16; ++l) {
            const int i = 16 * h + l;
            const int q = int(((ql[i] >> lshift) & 15) | (((qh[i] >> hshift) & 3) << 4)) - 32;
            w[i] = dl * float(q);
        }
    }
}

// Elements [32 s, 32 s + 32) of a row of type T.
template <WType T>
__device__ __forceinline__ void decode32(const uint8_t* row, int64_t s, float* w) {
    const int64_t block = s / Blocks<T>::per;
    decode_group<T>(row + block * Blocks<T>::size, int(s % Blocks<T>::per), w);
}

// Calls f(WTag<T>{}) for a quantized type; anything else is an invalid argument.
template <WType T>
struct WTag {
    static constexpr WType type = T;
};

template <typename F>
inline cudaError_t dispatch_quant(WType t, F&& f) {
    switch (t) {
    case WType::q8_0: return f(WTag<WType::q8_0>{});
    case WType::q4_0: return f(WTag<WType::q4_0>{});
    case WType::q4_1: return f(WTag<WType::q4_1>{});
    case WType::q5_0: return f(WTag<WType::q5_0>{});
    case WType::q5_1: return f(WTag<WType::q5_1>{});
    case WType::q2_k: return f(WTag<WType::q2_k>{});
    case WType::q3_k: return f(WTag<WType::q3_k>{});
    case WType::q4_k: return f(WTag<WType::q4_k>{});
    case WType::q5_k: return f(WTag<WType::q5_k>{});
    case WType::q6_k: return f(WTag<WType::q6_k>{});
    default: break;
    }
    return cudaErrorInvalidValue;
}

} // namespace rabbit
