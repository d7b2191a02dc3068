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
uint16_t bits_of(_Float16 h) {
    uint16_t b;
    std::memcpy(&b, &h, 2);
    return b;
}
_Float16 half_from_bits(uint16_t b) {
    _Float16 h;
    std::memcpy(&h, &b, 2);
    return h;
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
        float ref = float(half_from_bits(uint16_t(h)));
        if (std::isnan(ref)) {
            REQUIRE(std::isnan(ours));
        } else {
            REQUIRE(bits_of(ours) == bits_of(ref));
        }
    }
}

TEST_CASE("f32 to f16 rounds to nearest even like the hardware", "[dtype]") {
    std::mt19937 rng(7);
    std::vector<float> samples = {0.0f, -0.0f, 65504.0f, 65519.99f, 65520.0f, 1e-8f, 2.98e-8f, 5.96e-8f,
                                  6.1e-5f, -6.1e-5f, 1.0f + 1.0f / 2048, 1.0f + 3.0f / 2048,
                                  std::numeric_limits<float>::infinity(), -std::numeric_limits<float>::infinity(),
                                  from_bits(0x33000000), from_bits(0x33000001), from_bits(0x387fe000),
                                  from_bits(0x387ff000)};
    for (int i = 0; i < 2000000; ++i) samples.push_back(from_bits(rng()));
    // Dense coverage of the subnormal and low-normal f16 range.
    for (uint32_t b = 0x33000000; b < 0x39000000; b += 97) samples.push_back(from_bits(b));
    for (float f : samples) {
        uint16_t ours = f32_to_f16(f);
        uint16_t ref = bits_of(_Float16(f));
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
