// SPDX-License-Identifier: Apache-2.0
// Block-quantized weights as GGUF (ggml) lays them out, byte for byte: the block structures,
// dequantization of every type rabbit keeps, and quantization of the types `rabbit split
// --dtype` writes. Dequantization is bit-identical to the `gguf` Python package's
// gguf.quants.dequantize (scripts/quant_reference.py checks it): the same f32 operations in the
// same order, never contracted into fused multiply-adds.
//
// A block holds `dtype_block(t)` consecutive elements of one row (32, or 256 for the k-quants)
// in `dtype_block_bytes(t)` bytes; f16 scales are IEEE half precision, little-endian.
#pragma once

#include "common/dtype.h"

#include <cstddef>
#include <cstdint>
#include <cstring>

namespace rabbit {

constexpr size_t k_qk = 32;  // elements per block of q8_0 .. q5_1
constexpr size_t k_qkk = 256; // elements per block of the k-quants (a "super-block")
constexpr size_t k_k_scale_bytes = 12; // q4_k / q5_k: 8 six-bit scales and 8 six-bit mins

#pragma pack(push, 1)
struct BlockQ8_0 { // x = d * q
    uint16_t d;
    int8_t qs[k_qk];
};
struct BlockQ4_0 { // x = d * (q - 8); qs[j] low nibble: element j, high nibble: element j + 16
    uint16_t d;
    uint8_t qs[k_qk / 2];
};
struct BlockQ4_1 { // x = d * q + m
    uint16_t d, m;
    uint8_t qs[k_qk / 2];
};
struct BlockQ5_0 { // x = d * (q - 16); bit 4 of element j in qh (little-endian u32) bit j
    uint16_t d;
    uint8_t qh[4];
    uint8_t qs[k_qk / 2];
};
struct BlockQ5_1 { // x = d * q + m
    uint16_t d, m;
    uint8_t qh[4];
    uint8_t qs[k_qk / 2];
};
struct BlockQ2_K { // 16 groups of 16: x = d * (scales[g] & 15) * q - dmin * (scales[g] >> 4)
    uint8_t scales[k_qkk / 16];
    uint8_t qs[k_qkk / 4];
    uint16_t d, dmin;
};
struct BlockQ3_K { // 16 groups of 16, 6-bit signed scales; the high bit of q in hmask, inverted
    uint8_t hmask[k_qkk / 8];
    uint8_t qs[k_qkk / 4];
    uint8_t scales[12];
    uint16_t d;
};
struct BlockQ4_K { // 8 groups of 32: x = d * sc[g] * q - dmin * m[g], sc and m 6-bit
    uint16_t d, dmin;
    uint8_t scales[k_k_scale_bytes];
    uint8_t qs[k_qkk / 2];
};
struct BlockQ5_K {
    uint16_t d, dmin;
    uint8_t scales[k_k_scale_bytes];
    uint8_t qh[k_qkk / 8];
    uint8_t qs[k_qkk / 2];
};
struct BlockQ6_K { // 16 groups of 16: x = d * scales[g] * (q - 32), scales signed 8-bit
    uint8_t ql[k_qkk / 2];
    uint8_t qh[k_qkk / 4];
    int8_t scales[k_qkk / 16];
    uint16_t d;
};
#pragma pack(pop)

static_assert(sizeof(BlockQ8_0) == 34 && sizeof(BlockQ4_0) == 18 && sizeof(BlockQ4_1) == 20);
static_assert(sizeof(BlockQ5_0) == 22 && sizeof(BlockQ5_1) == 24 && sizeof(BlockQ2_K) == 84);
static_assert(sizeof(BlockQ3_K) == 110 && sizeof(BlockQ4_K) == 144 && sizeof(BlockQ5_K) == 176);
static_assert(sizeof(BlockQ6_K) == 210);

// q4_k / q5_k: the 6-bit scale and min of group j (0..7) from the 12 packed scale bytes.
inline void k_scale_min(int j, const uint8_t* q, uint8_t* sc, uint8_t* m) {
    if (j < 4) {
        *sc = q[j] & 63;
        *m = q[j + 4] & 63;
    } else {
        *sc = uint8_t((q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4));
        *m = uint8_t((q[j + 4] >> 4) | ((q[j] >> 6) << 4));
    }
}

// All 8 scales and all 8 mins of the same 12 bytes at once, byte g of *sc and *m being group
// g's (as k_scale_min gives them), computed on 32-bit words: what the vector kernels load.
inline void k_scales_mins(const uint8_t* q, uint64_t* sc, uint64_t* m) {
    uint32_t a, b, c;
    std::memcpy(&a, q, 4);
    std::memcpy(&b, q + 4, 4);
    std::memcpy(&c, q + 8, 4);
    const uint32_t low6 = 0x3f3f3f3fu, low4 = 0x0f0f0f0fu, top2 = 0x03030303u;
    *sc = uint64_t(a & low6) | uint64_t((c & low4) | ((a >> 6) & top2) << 4) << 32;
    *m = uint64_t(b & low6) | uint64_t(((c >> 4) & low4) | ((b >> 6) & top2) << 4) << 32;
}

// n elements (a multiple of dtype_block(t)) of any weight type, f32/f16/bf16 included, to f32.
void dequantize(DType t, const void* src, float* dst, size_t n);

// Whether quantize() writes type t: q8_0, q4_0, q4_1, q5_0, q5_1, q4_k, q5_k, q6_k.
bool can_quantize(DType t);
// n f32 values (a multiple of dtype_block(t)) to dtype_row_bytes(t, n) bytes of type t.
// Deterministic; a NaN or infinity in src is the caller's to refuse (check_finite).
void quantize(DType t, const float* src, void* dst, size_t n);

} // namespace rabbit
