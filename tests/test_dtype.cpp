// SPDX-License-Identifier: Apache-2.0
#include "common/dtype.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstring>
#include <limits>
#include <random>

using namespace rabbit;

namespace {
uint32_t bits_of(float f) {
    uint32_t b;
    std::memcpy(&b, &f, 4);
    return b;
}
float from_bits(uint32_t b) {
    float f;
    std::memcpy(&f, &b, 4);
    return f;
}
// The exact value of an f16 bit pattern, from its definition.
double f16_value(uint16_t h) {
    const int exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    double v = exp == 0 ? std::ldexp(double(mant), -24) : std::ldexp(double(1024 + mant), exp - 25);
    if (exp == 31) v = mant ? std::nan("") : INFINITY;
    return (h & 0x8000) ? -v : v;
}
// The nearest f16 by search over every finite f16, ties to even; beyond the largest finite
// value (65504) the next step up is 2^16, which is infinity.
uint16_t f16_reference(float f) {
    const double a = std::fabs(double(f));
    uint16_t lo = 0, hi = 0x7bff;
    while (lo < hi) { // largest h with value(h) <= a
        uint16_t mid = uint16_t((lo + hi + 1) / 2);
        if (f16_value(mid) <= a) lo = mid;
        else hi = uint16_t(mid - 1);
    }
    const double below = f16_value(lo), above = lo == 0x7bff ? 65536.0 : f16_value(uint16_t(lo + 1));
    uint16_t r;
    if (a - below < above - a) r = lo;
    else if (above - a < a - below) r = uint16_t(lo + 1);
    else r = (lo & 1) ? uint16_t(lo + 1) : lo;
    return uint16_t(r | (std::signbit(f) ? 0x8000 : 0));
}
// bf16 reference: the nearest bf16 by exhaustive comparison of the two neighbours.
uint16_t bf16_reference(float f) {
    uint32_t b = bits_of(f);
    uint16_t lo = uint16_t(b >> 16), hi = uint16_t(lo + 1);
    double dlo = std::fabs(double(bf16_to_f32(lo)) - f), dhi = std::fabs(double(bf16_to_f32(hi)) - f);
    if ((hi & 0x7f80) == 0x7f80 && (hi & 0x7f) == 0) dhi = std::fabs(std::ldexp(1.0, 128) - std::fabs(double(f)));
    if (dlo < dhi) return lo;
    if (dhi < dlo) return hi;
    return (lo & 1) ? hi : lo;
}
} // namespace

TEST_CASE("f16 to f32 is exact for every f16 value", "[dtype]") {
    for (uint32_t h = 0; h < 65536; ++h) {
        float ours = f16_to_f32(uint16_t(h));
        double ref = f16_value(uint16_t(h));
        if (std::isnan(ref)) {
            REQUIRE(std::isnan(ours));
        } else {
            REQUIRE(double(ours) == ref);
            REQUIRE(std::signbit(ours) == std::signbit(ref));
        }
    }
}

TEST_CASE("f32 to f16 rounds to the nearest f16, ties to even", "[dtype]") {
    std::mt19937 rng(7);
    std::vector<float> samples = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 2.98e-8f, 5.96e-8f,
                                  6.1e-5f, -6.1e-5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
                                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                  from_bits(0x33000000), from_bits(0x33000001), from_bits(0x387fe000),
                                  from_bits(0x387ff000)};
    for (int i = 0; i < 300000; ++i) samples.push_back(from_bits(rng()));
    // Values near f16's range, where rounding decides (random bits are mostly far outside it).
    for (int i = 0; i < 300000; ++i) samples.push_back(from_bits(0x33000000u + rng() % (0x47800000u - 0x33000000u)));
    // Dense coverage of the subnormal and low-normal f16 range.
    for (uint32_t b = 0x33000000; b < 0x39000000; b += 97) samples.push_back(from_bits(b));
    for (float f : samples) {
        uint16_t ours = f32_to_f16(f);
        uint16_t ref = f16_reference(f);
        if (std::isnan(f)) {
            REQUIRE((ours & 0x7c00) == 0x7c00);
            REQUIRE((ours & 0x3ff) != 0);
        } else {
            INFO("f32 bits " << std::hex << bits_of(f));
            REQUIRE(ours == ref);
        }
    }
}

TEST_CASE("f32 to bf16 rounds to nearest even and keeps NaN", "[dtype]") {
    std::mt19937 rng(11);
    for (int i = 0; i < 2000000; ++i) {
        float f = from_bits(rng());
        if (std::isnan(f)) {
            uint16_t r = f32_to_bf16(f);
            REQUIRE(std::isnan(bf16_to_f32(r)));
            continue;
        }
        if (std::isinf(f)) continue;
        INFO("f32 bits " << std::hex << bits_of(f));
        REQUIRE(f32_to_bf16(f) == bf16_reference(f));
    }
    REQUIRE(f32_to_bf16(1.0f) == 0x3f80);
    REQUIRE(f32_to_bf16(from_bits(0x3f808000)) == 0x3f80); // tie to even (down)
    REQUIRE(f32_to_bf16(from_bits(0x3f818000)) == 0x3f82); // tie to even (up)
    REQUIRE(f32_to_bf16(from_bits(0x7f7fffff)) == 0x7f80); // rounds up to infinity
}

TEST_CASE("bulk conversion matches the scalar conversions for every pair", "[dtype]") {
    std::mt19937 rng(3);
    std::normal_distribution<float> nd(0.0f, 3.0f);
    const size_t n = 769; // odd on purpose
    std::vector<float> f32(n);
    for (auto& v : f32) v = nd(rng);
    std::vector<uint16_t> bf(n), f16(n), out16(n);
    std::vector<float> out32(n);
    convert_elements(f32.data(), DType::f32, bf.data(), DType::bf16, n);
    convert_elements(f32.data(), DType::f32, f16.data(), DType::f16, n);
    for (size_t i = 0; i < n; ++i) {
        REQUIRE(bf[i] == f32_to_bf16(f32[i]));
        REQUIRE(f16[i] == f32_to_f16(f32[i]));
    }
    convert_elements(bf.data(), DType::bf16, out32.data(), DType::f32, n);
    for (size_t i = 0; i < n; ++i) REQUIRE(out32[i] == bf16_to_f32(bf[i]));
    convert_elements(f16.data(), DType::f16, out32.data(), DType::f32, n);
    for (size_t i = 0; i < n; ++i) REQUIRE(out32[i] == f16_to_f32(f16[i]));
    convert_elements(bf.data(), DType::bf16, out16.data(), DType::f16, n);
    for (size_t i = 0; i < n; ++i) REQUIRE(out16[i] == f32_to_f16(bf16_to_f32(bf[i])));
    convert_elements(f16.data(), DType::f16, out16.data(), DType::bf16, n);
    for (size_t i = 0; i < n; ++i) REQUIRE(out16[i] == f32_to_bf16(f16_to_f32(f16[i])));
    convert_elements(bf.data(), DType::bf16, out16.data(), DType::bf16, n);
    REQUIRE(out16 == bf);
}

TEST_CASE("dtype names round-trip in both spellings", "[dtype]") {
    for (DType t : {DType::f32, DType::f16, DType::bf16, DType::f64, DType::i8, DType::u8, DType::boolean, DType::f8_e4m3}) {
        REQUIRE(dtype_from_safetensors(dtype_safetensors_name(t)) == t);
        REQUIRE(dtype_from_name(dtype_name(t)) == t);
    }
    REQUIRE(dtype_size(DType::bf16) == 2);
    REQUIRE(dtype_size(DType::f64) == 8);
    REQUIRE(!dtype_from_safetensors("F4"));
    REQUIRE(!dtype_from_safetensors("bf16")); // safetensors spells it BF16
    REQUIRE(is_weight_dtype(DType::bf16));
    REQUIRE(!is_weight_dtype(DType::i32));
}

TEST_CASE("shape sizes detect overflow instead of wrapping", "[dtype]") {
    REQUIRE(shape_numel({}) == 1);
    REQUIRE(shape_numel({3, 5}) == 15);
    REQUIRE(shape_bytes({3, 5}, DType::bf16) == 30u);
    REQUIRE(shape_bytes({}, DType::f32) == 4u);
    REQUIRE(shape_bytes({0, 7}, DType::f32) == 0u);
    REQUIRE(!shape_bytes({1ull << 32, 1ull << 31}, DType::f32));
    REQUIRE(!shape_bytes({1ull << 32, 1ull << 30}, DType::f32)); // exactly 2^64
    REQUIRE(shape_bytes({1ull << 62, 1ull << 62, 0}, DType::f32) == 0u); // a zero anywhere: empty, not overflow
    REQUIRE(shape_bytes({1ull << 31, 1ull << 30}, DType::f32) == 1ull << 63);
}
