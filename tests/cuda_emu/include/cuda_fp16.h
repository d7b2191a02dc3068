// SPDX-License-Identifier: Apache-2.0
// The emulated cuda_fp16.h: __half and __half2 as 16-bit storage, and the conversions rabbit's
// kernels use, rounding as the device does (to nearest, ties to even; beyond +-65504 to
// +-inf). Written independently of rabbit's own CPU conversions (src/common/dtype.cpp), so
// that a test comparing the two compares two implementations.
#pragma once

#include "cuda_runtime.h"

#include <cmath>
#include <cstdint>

struct __half {
    unsigned short __x;
};
struct alignas(4) __half2 {
    __half x, y;
};

namespace cuda_emu {

inline float half_bits_to_float(unsigned short h) {
    const int sign = (h >> 15) & 1, exponent = (h >> 10) & 0x1f, fraction = h & 0x3ff;
    float v;
    if (exponent == 0x1f) {
        v = fraction ? NAN : INFINITY;
    } else if (exponent == 0) {
        v = std::ldexp(float(fraction), -24);
    } else {
        v = std::ldexp(float(fraction | 0x400), exponent - 25);
    }
    return sign ? -v : v;
}

// Round to nearest even through the FPU's own rounding (nearbyint), not bit manipulation.
inline unsigned short float_to_half_bits(float f) {
    if (std::isnan(f)) return 0x7fff; // the device's canonical NaN
    const unsigned short sign = std::signbit(f) ? 0x8000 : 0;
    const float a = std::fabs(f);
    if (a >= 65520.0f) return sign | 0x7c00;
    if (a < 0x1p-14f) return sign | static_cast<unsigned short>(std::nearbyint(a * 0x1p24f)); // 1024 is the smallest normal
    int e = 0;
    const float m = std::frexp(a, &e); // a = m * 2^e, m in [0.5, 1)
    int q = static_cast<int>(std::nearbyint(m * 2048.0f)); // 11 significant bits, in [1024, 2048]
    if (q == 2048) {
        q = 1024;
        ++e;
    }
    return sign | static_cast<unsigned short>(((e - 1 + 15) << 10) | (q - 1024));
}

} // namespace cuda_emu

inline float __half2float(__half h) { return ::cuda_emu::half_bits_to_float(h.__x); }
inline __half __float2half_rn(float f) { return __half{::cuda_emu::float_to_half_bits(f)}; }
inline __half __float2half(float f) { return __float2half_rn(f); }
inline float2 __half22float2(__half2 h) { return make_float2(__half2float(h.x), __half2float(h.y)); }
inline __half2 __floats2half2_rn(float a, float b) { return __half2{__float2half_rn(a), __float2half_rn(b)}; }
inline unsigned short __half_as_ushort(__half h) { return h.__x; }
inline __half __ushort_as_half(unsigned short v) { return __half{v}; }
