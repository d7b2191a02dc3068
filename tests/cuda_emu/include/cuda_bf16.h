// SPDX-License-Identifier: Apache-2.0
// The emulated cuda_bf16.h: __nv_bfloat16 as 16-bit storage and its conversions (to nearest,
// ties to even), written independently of src/common/dtype.cpp.
#pragma once

#include "cuda_runtime.h"

#include <cmath>
#include <cstdint>
#include <cstring>

struct __nv_bfloat16 {
    unsigned short __x;
};
struct alignas(4) __nv_bfloat162 {
    __nv_bfloat16 x, y;
};

namespace cuda_emu {

inline float bf16_bits_to_float(unsigned short h) { return bit_cast<float>(uint32_t(h) << 16); }

inline unsigned short float_to_bf16_bits(float f) {
    if (std::isnan(f)) return 0x7fff; // the device's canonical NaN
    float r;
    if (std::fabs(f) < 0x1p-126f) {
        r = float(std::nearbyint(double(f) * 0x1p133) * 0x1p-133); // f32 subnormals: bf16 keeps bits from 2^-133
    } else {
        int e = 0;
        const float m = std::frexp(f, &e);          // |m| in [0.5, 1)
        r = std::ldexp(std::nearbyint(m * 256.0f), e - 8); // 8 significant bits; may round up to inf
    }
    return static_cast<unsigned short>(bit_cast<uint32_t>(r) >> 16);
}

} // namespace cuda_emu

inline float __bfloat162float(__nv_bfloat16 h) { return ::cuda_emu::bf16_bits_to_float(h.__x); }
inline __nv_bfloat16 __float2bfloat16_rn(float f) { return __nv_bfloat16{::cuda_emu::float_to_bf16_bits(f)}; }
inline __nv_bfloat16 __float2bfloat16(float f) { return __float2bfloat16_rn(f); }
inline float2 __bfloat1622float2(__nv_bfloat162 h) { return make_float2(__bfloat162float(h.x), __bfloat162float(h.y)); }
inline unsigned short __bfloat16_as_ushort(__nv_bfloat16 h) { return h.__x; }
