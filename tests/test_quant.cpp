// SPDX-License-Identifier: Apache-2.0
// Block quantization (common/quant.h). Bit-identity with gguf-py is scripts/quant_reference.py's
// (it needs the venv); here: known answers from blocks packed by hand after the GGUF layouts,
// round-trip error bounds derived from the bit widths, determinism and edge blocks.
#include "common/quant.h"

#include "common/error.h"
#include "helpers.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

using namespace rabbit;

namespace {

constexpr uint16_t h_one = 0x3c00, h_half = 0x3800, h_quarter = 0x3400, h_two = 0x4000, h_minus_one = 0xbc00;

template <typename Block>
std::vector<float> decode(DType t, const Block& b) {
    std::vector<float> out(dtype_block(t));
    dequantize(t, &b, out.data(), out.size());
    return out;
}

// The relative RMSE of y against x; fails on a NaN or an infinity in y.
double relative_rmse(const std::vector<float>& x, const std::vector<float>& y) {
    REQUIRE(x.size() == y.size());
    double err = 0, sig = 0;
    for (size_t i = 0; i < x.size(); ++i) {
        INFO("element " << i << " = " << y[i]);
        REQUIRE(std::isfinite(y[i]));
        err += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        sig += double(x[i]) * x[i];
    }
    return std::sqrt(err / sig);
}

std::vector<float> round_trip(DType t, const std::vector<float>& x) {
    std::vector<uint8_t> blocks(dtype_row_bytes(t, x.size()));
    quantize(t, x.data(), blocks.data(), x.size());
    std::vector<float> y(x.size());
    dequantize(t, blocks.data(), y.data(), y.size());
    return y;
}

// Levels drawn at random in [lo, hi]: the known answers use every value a field can hold.
std::vector<int> random_levels(size_t n, int lo, int hi, std::mt19937& rng) {
    std::uniform_int_distribution<int> pick(lo, hi);
    std::vector<int> q(n);
    for (auto& v : q) v = pick(rng);
    return q;
}

// ---- encoders written from the GGUF layouts (not from quant_encode.cpp) -------------------

// 32-element blocks: element j < 16 in the low nibble of qs[j], element j + 16 in the high.
void put_nibbles32(const std::vector<int>& q, uint8_t* qs) {
    for (int j = 0; j < 16; ++j) qs[j] = uint8_t((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
}
void put_fifth_bits32(const std::vector<int>& q, uint8_t* qh) {
    std::memset(qh, 0, 4);
    for (int j = 0; j < 32; ++j) qh[j / 8] |= uint8_t(((q[j] >> 4) & 1) << (j % 8));
}
// 2-bit fields of 256 elements (q2_k, q3_k): 2 halves of 128; in each, byte l of the half's
// 32 holds elements l, l+32, l+64, l+96 at bits 0, 2, 4, 6.
void put_crumbs256(const std::vector<int>& q, uint8_t* qs) {
    std::memset(qs, 0, 64);
    for (int half = 0; half < 2; ++half)
        for (int shift = 0; shift < 4; ++shift)
            for (int l = 0; l < 32; ++l) qs[32 * half + l] |= uint8_t((q[128 * half + 32 * shift + l] & 3) << (2 * shift));
}
// q4_k / q5_k low nibbles: 4 chunks of 64; byte l of a chunk's 32 holds elements l (low) and
// l + 32 (high).
void put_nibbles256(const std::vector<int>& q, uint8_t* qs) {
    for (int chunk = 0; chunk < 4; ++chunk)
        for (int l = 0; l < 32; ++l)
            qs[32 * chunk + l] = uint8_t((q[64 * chunk + l] & 0xF) | (q[64 * chunk + 32 + l] & 0xF) << 4);
}
// One bit per element of 256 (q3_k's hmask, q5_k's qh): element 32 * b + l at bit b of byte l.
void put_bitplanes256(const std::vector<int>& bit, uint8_t* out) {
    std::memset(out, 0, 32);
    for (int b = 0; b < 8; ++b)
        for (int l = 0; l < 32; ++l) out[l] |= uint8_t((bit[32 * b + l] & 1) << b);
}
// q4_k / q5_k's 12 scale bytes: groups 0..3 in bytes 0..3 (scale) and 4..7 (min), low 6 bits;
// groups 4..7: low 4 bits in byte 8..11 (scale low nibble, min high nibble), top 2 bits in the
// top 2 bits of bytes 0..3 (scale) and 4..7 (min).
void put_k_scales(const std::vector<int>& sc, const std::vector<int>& m, uint8_t* out) {
    std::memset(out, 0, 12);
    for (int g = 0; g < 4; ++g) {
        out[g] = uint8_t(sc[g]);
        out[g + 4] = uint8_t(m[g]);
    }
    for (int g = 4; g < 8; ++g) {
        out[g + 4] = uint8_t((sc[g] & 0xF) | (m[g] & 0xF) << 4);
        out[g - 4] |= uint8_t((sc[g] >> 4) << 6);
        out[g] |= uint8_t((m[g] >> 4) << 6);
    }
}

void require_values(const std::vector<float>& got, const std::vector<double>& want) {
    std::vector<float> w(want.begin(), want.end());
    test::require_same(got, w);
}

} // namespace

// The scales below are powers of two and the levels small integers, so every expected value is
// exact in f32 whatever the order of operations: these check the layouts, not the rounding.
TEST_CASE("q8_0, q4_0, q4_1, q5_0 and q5_1 decode hand-packed blocks", "[quant]") {
    std::mt19937 rng(1);
    SECTION("q8_0: d * q") {
        BlockQ8_0 b{};
        b.d = h_half;
        const auto q = random_levels(32, -128, 127, rng);
        std::vector<double> want(32);
        for (int j = 0; j < 32; ++j) {
            b.qs[j] = int8_t(q[j]);
            want[j] = 0.5 * q[j];
        }
        require_values(decode(DType::q8_0, b), want);
    }
    SECTION("q4_0: d * (q - 8)") {
        BlockQ4_0 b{};
        b.d = h_two;
        const auto q = random_levels(32, 0, 15, rng);
        put_nibbles32(q, b.qs);
        std::vector<double> want(32);
        for (int j = 0; j < 32; ++j) want[j] = 2.0 * (q[j] - 8);
        require_values(decode(DType::q4_0, b), want);
        b.qs[3] = 0xF0; // element 3 = 0 -> -16, element 19 = 15 -> 14
        const auto y = decode(DType::q4_0, b);
        CHECK(y[3] == -16.0f);
        CHECK(y[19] == 14.0f);
    }
    SECTION("q4_1: d * q + m") {
        BlockQ4_1 b{};
        b.d = h_quarter;
        b.m = h_minus_one;
        const auto q = random_levels(32, 0, 15, rng);
        put_nibbles32(q, b.qs);
        std::vector<double> want(32);
        for (int j = 0; j < 32; ++j) want[j] = 0.25 * q[j] - 1.0;
        require_values(decode(DType::q4_1, b), want);
    }
    SECTION("q5_0: d * (q - 16), bit 4 of element j in bit j of qh") {
        BlockQ5_0 b{};
        b.d = h_one;
        const auto q = random_levels(32, 0, 31, rng);
        put_nibbles32(q, b.qs);
        put_fifth_bits32(q, b.qh);
        std::vector<double> want(32);
        for (int j = 0; j < 32; ++j) want[j] = q[j] - 16;
        require_values(decode(DType::q5_0, b), want);
        std::memset(b.qs, 0, sizeof b.qs);
        std::memset(b.qh, 0, sizeof b.qh);
        b.qh[3] = 0x80; // element 31 only: 16 - 16 = 0; the rest -16
        const auto y = decode(DType::q5_0, b);
        CHECK(y[31] == 0.0f);
        CHECK(y[30] == -16.0f);
    }
    SECTION("q5_1: d * q + m") {
        BlockQ5_1 b{};
        b.d = h_half;
        b.m = h_two;
        const auto q = random_levels(32, 0, 31, rng);
        put_nibbles32(q, b.qs);
        put_fifth_bits32(q, b.qh);
        std::vector<double> want(32);
        for (int j = 0; j < 32; ++j) want[j] = 0.5 * q[j] + 2.0;
        require_values(decode(DType::q5_1, b), want);
    }
}

TEST_CASE("q2_k and q3_k decode hand-packed blocks, q3_k's 6-bit scales and hmask included", "[quant]") {
    std::mt19937 rng(2);
    SECTION("q2_k: d * (scales & 15) * q - dmin * (scales >> 4), groups of 16") {
        BlockQ2_K b{};
        b.d = h_one;
        b.dmin = h_half;
        const auto sc = random_levels(16, 0, 15, rng), m = random_levels(16, 0, 15, rng);
        for (int g = 0; g < 16; ++g) b.scales[g] = uint8_t(sc[g] | m[g] << 4);
        const auto q = random_levels(256, 0, 3, rng);
        put_crumbs256(q, b.qs);
        std::vector<double> want(256);
        for (int e = 0; e < 256; ++e) want[e] = double(sc[e / 16]) * q[e] - 0.5 * m[e / 16];
        require_values(decode(DType::q2_k, b), want);
    }
    SECTION("q3_k: d * (scale - 32) * q, q = low 2 bits - 4 where the hmask bit is clear") {
        BlockQ3_K b{};
        b.d = h_quarter;
        const auto s6 = random_levels(16, 0, 63, rng); // stored 6-bit scales; the scale is s6 - 32
        for (int g = 0; g < 16; ++g) {
            b.scales[g % 8] |= uint8_t((s6[g] & 0xF) << (4 * (g / 8)));          // low 4 bits
            b.scales[8 + g % 4] |= uint8_t((s6[g] >> 4) << (2 * (g / 4)));       // top 2 bits
        }
        const auto q = random_levels(256, -4, 3, rng);
        std::vector<int> low(256), high(256);
        for (int e = 0; e < 256; ++e) {
            low[e] = q[e] & 3;
            high[e] = q[e] >= 0 ? 1 : 0; // a set bit means no -4
        }
        put_crumbs256(low, b.qs);
        put_bitplanes256(high, b.hmask);
        std::vector<double> want(256);
        for (int e = 0; e < 256; ++e) want[e] = 0.25 * (s6[e / 16] - 32) * q[e];
        require_values(decode(DType::q3_k, b), want);
    }
    SECTION("q3_k spot values") {
        BlockQ3_K b{};
        b.d = h_one;
        // Group 13's scale: low 4 bits in byte 5's high nibble, top 2 bits in byte 9's bits 6..7:
        // 0b10'0111 = 39, i.e. 7. Every other group's stored scale is 0, i.e. -32.
        b.scales[5] = 0x70;
        b.scales[9] = 0x80;
        // Elements 208 (group 13) and 240 (group 15) are 128 + 32*s + 16 with s = 2 and 3: their
        // low bits are bits 4..5 and 6..7 of qs[32 + 16], their high bits bits 6 and 7 of hmask[16].
        b.qs[48] = uint8_t(2 << 4 | 3 << 6);
        b.hmask[16] = 0x80; // 240: set, q = 3; 208: clear, q = 2 - 4
        const auto y = decode(DType::q3_k, b);
        CHECK(y[208] == -14.0f);
        CHECK(y[240] == -96.0f);
        CHECK(y[0] == 128.0f); // scale -32, q = 0 - 4
    }
}

TEST_CASE("q4_k, q5_k and q6_k decode hand-packed blocks, the 6-bit scales of groups 4..7 included", "[quant]") {
    std::mt19937 rng(3);
    SECTION("k_scale_min unpacks every group's 6-bit scale and min") {
        const auto sc = random_levels(8, 0, 63, rng), m = random_levels(8, 0, 63, rng);
        uint8_t packed[12];
        put_k_scales(sc, m, packed);
        for (int g = 0; g < 8; ++g) {
            uint8_t s = 0, mm = 0;
            k_scale_min(g, packed, &s, &mm);
            CHECK(int(s) == sc[g]);
            CHECK(int(mm) == m[g]);
        }
        uint64_t all_sc = 0, all_m = 0; // the word-wise unpacking of all 8 agrees
        k_scales_mins(packed, &all_sc, &all_m);
        for (int g = 0; g < 8; ++g) {
            CHECK(int((all_sc >> (8 * g)) & 255) == sc[g]);
            CHECK(int((all_m >> (8 * g)) & 255) == m[g]);
        }
        for (int i = 0; i < 1000; ++i) { // and on any 12 bytes whatever
            uint8_t any[12];
            for (auto& v : any) v = uint8_t(rng());
            k_scales_mins(any, &all_sc, &all_m);
            for (int g = 0; g < 8; ++g) {
                uint8_t s = 0, mm = 0;
                k_scale_min(g, any, &s, &mm);
                REQUIRE(((all_sc >> (8 * g)) & 255) == s);
                REQUIRE(((all_m >> (8 * g)) & 255) == mm);
            }
        }
        // Group 5 by hand: scale 53 = 0b11'0101, min 43 = 0b10'1011.
        const uint8_t by_hand[12] = {0, 0xC0, 0, 0, 0, 0x80, 0, 0, 0, 0xB5, 0, 0};
        uint8_t s = 0, mm = 0;
        k_scale_min(5, by_hand, &s, &mm);
        CHECK(int(s) == 53);
        CHECK(int(mm) == 43);
    }
    SECTION("q4_k: d * sc * q - dmin * m, groups of 32") {
        BlockQ4_K b{};
        b.d = h_half;
        b.dmin = h_quarter;
        const auto sc = random_levels(8, 0, 63, rng), m = random_levels(8, 0, 63, rng);
        put_k_scales(sc, m, b.scales);
        const auto q = random_levels(256, 0, 15, rng);
        put_nibbles256(q, b.qs);
        std::vector<double> want(256);
        for (int e = 0; e < 256; ++e) want[e] = 0.5 * sc[e / 32] * q[e] - 0.25 * m[e / 32];
        require_values(decode(DType::q4_k, b), want);
    }
    SECTION("q5_k: q4_k's layout with bit 4 of element 32 * g + l in bit g of qh[l]") {
        BlockQ5_K b{};
        b.d = h_one;
        b.dmin = h_two;
        const auto sc = random_levels(8, 0, 63, rng), m = random_levels(8, 0, 63, rng);
        put_k_scales(sc, m, b.scales);
        const auto q = random_levels(256, 0, 31, rng);
        std::vector<int> fifth(256);
        for (int e = 0; e < 256; ++e) fifth[e] = q[e] >> 4;
        put_nibbles256(q, b.qs);
        put_bitplanes256(fifth, b.qh);
        std::vector<double> want(256);
        for (int e = 0; e < 256; ++e) want[e] = double(sc[e / 32]) * q[e] - 2.0 * m[e / 32];
        require_values(decode(DType::q5_k, b), want);
    }
    SECTION("q6_k: d * scales[g] * (q - 32), signed 8-bit scales, groups of 16") {
        BlockQ6_K b{};
        b.d = h_quarter;
        const auto sc = random_levels(16, -128, 127, rng);
        for (int g = 0; g < 16; ++g) b.scales[g] = int8_t(sc[g]);
        const auto q = random_levels(256, 0, 63, rng);
        // Two halves of 128; in each, ql's 64 bytes hold elements l and l + 64 (low and high
        // nibble) for l < 64, and qh's 32 bytes the top 2 bits of l, l+32, l+64, l+96 at bits 0,2,4,6.
        for (int half = 0; half < 2; ++half) {
            const int* qh_src = q.data() + 128 * half;
            for (int l = 0; l < 64; ++l) b.ql[64 * half + l] = uint8_t((qh_src[l] & 0xF) | (qh_src[l + 64] & 0xF) << 4);
            for (int l = 0; l < 32; ++l)
                for (int k = 0; k < 4; ++k) b.qh[32 * half + l] |= uint8_t((qh_src[l + 32 * k] >> 4) << (2 * k));
        }
        std::vector<double> want(256);
        for (int e = 0; e < 256; ++e) want[e] = 0.25 * sc[e / 16] * (q[e] - 32);
        require_values(decode(DType::q6_k, b), want);
    }
}

// gguf-py's quantize rules (and ggml's reference): written here from their definitions.
TEST_CASE("q8_0, q4_0 and q4_1 quantize by the reference rules", "[quant]") {
    std::mt19937 rng(5);
    auto x = test::random_vector(32 * 64, rng, -2.0f, 2.0f);
    // Block 0: amax 127 makes q8_0's d = 1, and x = k + 0.5 ties: -0.5 must become -1, 0.5 1.
    x[0] = 127.0f;
    for (int j = 1; j < 32; ++j) x[j] = float(j) - 15.5f;
    SECTION("q8_0: d = amax / 127, q = round(x / d) with halves away from zero") {
        std::vector<BlockQ8_0> b(64);
        quantize(DType::q8_0, x.data(), b.data(), x.size());
        for (size_t k = 0; k < 64; ++k) {
            const float* xb = x.data() + 32 * k;
            float amax = 0;
            for (int j = 0; j < 32; ++j) amax = std::max(amax, std::fabs(xb[j]));
            const float d = amax / 127.0f, id = 1.0f / d;
            REQUIRE(b[k].d == f32_to_f16(d));
            for (int j = 0; j < 32; ++j) {
                const float v = xb[j] * id;
                const int want = int(std::floor(std::fabs(v) + 0.5f)) * (v < 0 ? -1 : 1);
                REQUIRE(int(b[k].qs[j]) == want);
            }
        }
    }
    SECTION("q4_0: d = -max / 8 (max the signed extreme), q = min(15, trunc(x / d + 8.5))") {
        std::vector<BlockQ4_0> b(64);
        quantize(DType::q4_0, x.data(), b.data(), x.size());
        for (size_t k = 0; k < 64; ++k) {
            const float* xb = x.data() + 32 * k;
            float vmax = 0;
            for (int j = 0; j < 32; ++j)
                if (std::fabs(xb[j]) > std::fabs(vmax)) vmax = xb[j];
            const float d = vmax / -8.0f, id = 1.0f / d;
            REQUIRE(b[k].d == f32_to_f16(d));
            for (int j = 0; j < 32; ++j) {
                const int want = std::min(15, int(float(double(xb[j]) * id + 8.5)));
                const int got = j < 16 ? b[k].qs[j] & 0xF : b[k].qs[j - 16] >> 4;
                REQUIRE(got == want);
            }
        }
    }
    SECTION("q4_1: d = (max - min) / 15, m = min, q = min(15, trunc((x - min) / d + 0.5))") {
        std::vector<BlockQ4_1> b(64);
        quantize(DType::q4_1, x.data(), b.data(), x.size());
        for (size_t k = 0; k < 64; ++k) {
            const float* xb = x.data() + 32 * k;
            const float lo = *std::min_element(xb, xb + 32), hi = *std::max_element(xb, xb + 32);
            const float d = (hi - lo) / 15.0f, id = 1.0f / d;
            REQUIRE(b[k].d == f32_to_f16(d));
            REQUIRE(b[k].m == f32_to_f16(lo));
            for (int j = 0; j < 32; ++j) {
                volatile float scaled = (xb[j] - lo) * id; // rounded on its own, as numpy does
                const int want = std::min(15, int(scaled + 0.5f));
                const int got = j < 16 ? b[k].qs[j] & 0xF : b[k].qs[j - 16] >> 4;
                REQUIRE(got == want);
            }
        }
    }
}

TEST_CASE("every decoded value of random blocks with finite scales is finite", "[quant]") {
    std::mt19937 rng(4);
    for (DType t : {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0, DType::q5_1, DType::q2_k, DType::q3_k,
                    DType::q4_k, DType::q5_k, DType::q6_k}) {
        INFO(dtype_name(t));
        const size_t blocks = 64, bytes = dtype_block_bytes(t);
        std::vector<uint8_t> raw(blocks * bytes);
        for (auto& v : raw) v = uint8_t(rng());
        // Every 2-byte field that is an f16 scale: make the largest finite f16 instead of inf/NaN.
        for (size_t i = 0; i + 1 < raw.size(); i += 2)
            if ((raw[i + 1] & 0x7C) == 0x7C) raw[i + 1] = uint8_t(raw[i + 1] & 0xFB);
        std::vector<float> y(blocks * dtype_block(t));
        dequantize(t, raw.data(), y.data(), y.size());
        size_t bad = 0;
        for (float v : y) bad += std::isfinite(v) ? 0 : 1;
        CHECK(bad == 0);
    }
}

namespace {
const DType k_writable[] = {DType::q8_0, DType::q4_0, DType::q4_1, DType::q5_0,
                            DType::q5_1, DType::q4_k, DType::q5_k, DType::q6_k};

// The relative RMSE bound of type t on values uniform in [-1, 1). A uniform quantizer of step s
// errs by s / sqrt(12) RMS; the signal's RMS is 1 / sqrt(3), so the relative RMSE is s / 2.
// Blocks span about [-1, 1]: q8_0's step is 1/127 (0.39%), q4_0's 1/8 (6.3%), q5_0's 1/16
// (3.1%), q4_1's and q4_k's 2/15 (6.7%: the k-quants' search buys back what their 6-bit group
// scales cost), q5_1's and q5_k's 2/31 (3.2%), q6_k's 1/32 (1.6%). The bounds are those with a
// 15% margin: a wrong level, scale or packing errs far more.
double uniform_bound(DType t) {
    switch (t) {
    case DType::q8_0: return 1.15 * (1.0 / 127) / 2;
    case DType::q4_0: return 1.15 * (1.0 / 8) / 2;
    case DType::q5_0: return 1.15 * (1.0 / 16) / 2;
    case DType::q4_1:
    case DType::q4_k: return 1.15 * (2.0 / 15) / 2;
    case DType::q5_1:
    case DType::q5_k: return 1.15 * (2.0 / 31) / 2;
    case DType::q6_k: return 1.15 * (1.0 / 32) / 2;
    default: return 0;
    }
}
} // namespace

TEST_CASE("quantize then dequantize stays within the error its bit width allows", "[quant]") {
    std::mt19937 rng(6);
    const auto x = test::random_vector(256 * 96, rng);
    for (DType t : k_writable) {
        const double err = relative_rmse(x, round_trip(t, x));
        INFO(dtype_name(t) << ": relative RMSE " << err << ", bound " << uniform_bound(t));
        CHECK(err < uniform_bound(t));
        CHECK(err > uniform_bound(t) / 4); // not a lossless copy by mistake (e.g. of the input)
    }
}

TEST_CASE("the k-quants' scale search beats plain rounding on weight-like data", "[quant]") {
    // Normal values with rare outliers, as in real weights: q4_k (4.5 bits) is no worse than
    // q4_1 (5 bits) there, q5_k than q5_1, q6_k than q5_1 by far.
    std::mt19937 rng(7);
    std::normal_distribution<float> normal(0.0f, 0.02f);
    std::vector<float> x(256 * 96);
    for (auto& v : x) v = normal(rng);
    for (size_t i = 0; i < x.size(); i += 997) x[i] *= 20.0f;
    const double q4_1 = relative_rmse(x, round_trip(DType::q4_1, x)), q4_k = relative_rmse(x, round_trip(DType::q4_k, x));
    const double q5_1 = relative_rmse(x, round_trip(DType::q5_1, x)), q5_k = relative_rmse(x, round_trip(DType::q5_k, x));
    const double q6_k = relative_rmse(x, round_trip(DType::q6_k, x));
    INFO("q4_1 " << q4_1 << ", q4_k " << q4_k << ", q5_1 " << q5_1 << ", q5_k " << q5_k << ", q6_k " << q6_k);
    CHECK(q4_k < q4_1);
    CHECK(q5_k < q5_1);
    CHECK(q6_k < 0.6 * q5_1);
}

TEST_CASE("quantize is deterministic and block-local", "[quant]") {
    std::mt19937 rng(8);
    const auto x = test::random_vector(256 * 8, rng, -3.0f, 1.0f);
    for (DType t : k_writable) {
        INFO(dtype_name(t));
        const size_t bytes = dtype_row_bytes(t, x.size());
        std::vector<uint8_t> once(bytes), again(bytes), by_block(bytes);
        quantize(t, x.data(), once.data(), x.size());
        quantize(t, x.data(), again.data(), x.size());
        CHECK(once == again);
        // One block per call gives the same bytes: the splitter may cut rows anywhere on a block.
        const size_t qk = dtype_block(t), bb = dtype_block_bytes(t);
        for (size_t i = 0; i < x.size() / qk; ++i) quantize(t, x.data() + i * qk, by_block.data() + i * bb, qk);
        CHECK(once == by_block);
    }
}

TEST_CASE("zero and constant blocks quantize to what they were", "[quant]") {
    for (DType t : k_writable) {
        INFO(dtype_name(t));
        const std::vector<float> zeros(256, 0.0f);
        const auto y = round_trip(t, zeros);
        for (float v : y) REQUIRE(v == 0.0f);
        // A constant block: the level set holds its value closely (an f16 scale's precision).
        const std::vector<float> c(256, 0.375f);
        const double err = relative_rmse(c, round_trip(t, c));
        CHECK(err < 2e-3);
    }
}

TEST_CASE("quantize and dequantize refuse what is not whole blocks or not writable", "[quant]") {
    std::vector<float> x(300, 1.0f);
    std::vector<uint8_t> out(4096);
    CHECK_THROWS_AS(quantize(DType::q4_k, x.data(), out.data(), 300), Error);
    CHECK_THROWS_AS(dequantize(DType::q8_0, out.data(), x.data(), 33), Error);
    CHECK_FALSE(can_quantize(DType::q2_k));
    CHECK_FALSE(can_quantize(DType::q3_k));
    CHECK_FALSE(can_quantize(DType::f16));
    CHECK_THROWS_AS(quantize(DType::q3_k, x.data(), out.data(), 256), Error);
    for (DType t : k_writable) CHECK(can_quantize(t));
}
