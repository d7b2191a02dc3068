// SPDX-License-Identifier: Apache-2.0
// Dequantization of every block type rabbit keeps. Each element is the f32 value gguf-py's
// gguf.quants.dequantize computes, bit for bit: the f16 scales widen exactly (f16_to_f32, as
// numpy's astype does), the small integers are exact in f32, and every product, sum and
// difference is one f32 operation in numpy's order, e.g. q4_k's `(d * sc) * q - (dmin * m)`
// is two roundings for the products and one for the difference. This file is compiled with
// -ffp-contract=off (CMakeLists.txt) so that the compiler never fuses `a * q - b` into one
// rounding: with today's types the products happen to be exact (an 11-bit f16 times a level
// of at most 14 bits), but the bit-identity must not rest on that or on the target's FMA.
#include "common/quant.h"

#include "common/error.h"

#include <string>

namespace rabbit {
namespace {

float f16(uint16_t h) { return f16_to_f32(h); }

// The 4-bit element j (0..31) of a 32-element block: low nibbles first, then high nibbles.
int nibble32(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 0xF : qs[j - 16] >> 4; }

void dequantize_q8_0(const BlockQ8_0& b, float* y) {
    const float d = f16(b.d);
    for (size_t j = 0; j < k_qk; ++j) y[j] = float(b.qs[j]) * d;
}

void dequantize_q4_0(const BlockQ4_0& b, float* y) {
    const float d = f16(b.d);
    for (int j = 0; j < int(k_qk); ++j) y[j] = d * float(nibble32(b.qs, j) - 8);
}

void dequantize_q4_1(const BlockQ4_1& b, float* y) {
    const float d = f16(b.d), m = f16(b.m);
    for (int j = 0; j < int(k_qk); ++j) y[j] = d * float(nibble32(b.qs, j)) + m;
}

uint32_t high_bits(const uint8_t qh[4]) {
    return uint32_t(qh[0]) | uint32_t(qh[1]) << 8 | uint32_t(qh[2]) << 16 | uint32_t(qh[3]) << 24;
}

void dequantize_q5_0(const BlockQ5_0& b, float* y) {
    const float d = f16(b.d);
    const uint32_t qh = high_bits(b.qh);
    for (int j = 0; j < int(k_qk); ++j) {
        const int q = nibble32(b.qs, j) | int((qh >> j) & 1u) << 4;
        y[j] = d * float(q - 16);
    }
}

void dequantize_q5_1(const BlockQ5_1& b, float* y) {
    const float d = f16(b.d), m = f16(b.m);
    const uint32_t qh = high_bits(b.qh);
    for (int j = 0; j < int(k_qk); ++j) {
        const int q = nibble32(b.qs, j) | int((qh >> j) & 1u) << 4;
        y[j] = d * float(q) + m;
    }
}

// q2_k: element e = 128*h + 32*s + l holds bits 2s..2s+1 of qs[32*h + l]; group e / 16.
void dequantize_q2_k(const BlockQ2_K& b, float* y) {
    const float d = f16(b.d), dmin = f16(b.dmin);
    for (int e = 0; e < int(k_qkk); ++e) {
        const int h = e / 128, s = (e / 32) % 4, l = e % 32, g = e / 16;
        const float dl = d * float(b.scales[g] & 0xF);
        const float ml = dmin * float(b.scales[g] >> 4);
        const int q = (b.qs[32 * h + l] >> (2 * s)) & 3;
        y[e] = dl * float(q) - ml;
    }
}

// q3_k's 16 six-bit scales: the low 4 bits from bytes 0..7 (low nibbles for groups 0..7, high
// for 8..15), the top 2 bits from bytes 8..11 (group g: byte 8 + g % 4, bits 2*(g / 4)).
int q3_k_scale(const uint8_t* sc, int g) {
    const int low = g < 8 ? sc[g] & 0xF : sc[g - 8] >> 4;
    const int high = (sc[8 + g % 4] >> (2 * (g / 4))) & 3;
    return (low | high << 4) - 32;
}

// q3_k: the low 2 bits of element e = 128*h + 32*s + l as q2_k; its third bit is bit e / 32 of
// hmask[l], and a clear bit subtracts 4.
void dequantize_q3_k(const BlockQ3_K& b, float* y) {
    const float d = f16(b.d);
    for (int e = 0; e < int(k_qkk); ++e) {
        const int h = e / 128, s = (e / 32) % 4, l = e % 32;
        const float dl = d * float(q3_k_scale(b.scales, e / 16));
        const int low = (b.qs[32 * h + l] >> (2 * s)) & 3;
        const int high_clear = ((b.hmask[l] >> (e / 32)) & 1) ^ 1;
        y[e] = dl * float(low - (high_clear << 2));
    }
}

// q4_k: element e = 64*c + 32*k + l is nibble k of qs[32*c + l]; group e / 32. q5_k: the same
// low 4 bits, and bit 4 of element e = 32*g + l is bit g of qh[l] (qh null for q4_k).
void dequantize_k_groups(uint16_t d16, uint16_t dmin16, const uint8_t* scales, const uint8_t* qs_all,
                         const uint8_t* qh, float* y) {
    const float d = f16(d16), dmin = f16(dmin16);
    for (int g = 0; g < 8; ++g) {
        uint8_t sc = 0, m = 0;
        k_scale_min(g, scales, &sc, &m);
        const float dl = d * float(sc), ml = dmin * float(m);
        const uint8_t* qs = qs_all + 32 * (g / 2);
        for (int l = 0; l < 32; ++l) {
            int q = (qs[l] >> (4 * (g % 2))) & 0xF;
            if (qh) q |= ((qh[l] >> g) & 1) << 4;
            y[32 * g + l] = dl * float(q) - ml;
        }
    }
}

void dequantize_q4_k(const BlockQ4_K& b, float* y) { dequantize_k_groups(b.d, b.dmin, b.scales, b.qs, nullptr, y); }
void dequantize_q5_k(const BlockQ5_K& b, float* y) { dequantize_k_groups(b.d, b.dmin, b.scales, b.qs, b.qh, y); }

// q6_k: element e = 128*h + 32*s + l: its low 4 bits are nibble s / 2 of ql[64*h + 32*(s % 2)
// + l], its high 2 bits are bits 2s..2s+1 of qh[32*h + l]; group e / 16.
void dequantize_q6_k(const BlockQ6_K& b, float* y) {
    const float d = f16(b.d);
    for (int e = 0; e < int(k_qkk); ++e) {
        const int h = e / 128, s = (e / 32) % 4, l = e % 32;
        const float dl = d * float(b.scales[e / 16]);
        const int low = (b.ql[64 * h + 32 * (s % 2) + l] >> (4 * (s / 2))) & 0xF;
        const int high = (b.qh[32 * h + l] >> (2 * s)) & 3;
        y[e] = dl * float((low | high << 4) - 32);
    }
}

template <typename Block>
void dequantize_blocks(void (*one)(const Block&, float*), const void* src, float* dst, size_t n, size_t qk) {
    const auto* blocks = static_cast<const Block*>(src);
    for (size_t i = 0; i < n / qk; ++i) one(blocks[i], dst + i * qk);
}

} // namespace

void dequantize(DType t, const void* src, float* dst, size_t n) {
    if (is_float_weight_dtype(t)) return convert_elements(src, t, dst, DType::f32, n);
    RABBIT_CHECK(is_quant_dtype(t), std::string("dequantize: ") + dtype_name(t) + " is not a weight type");
    RABBIT_CHECK(n % dtype_block(t) == 0, std::string("dequantize ") + dtype_name(t) + ": " + std::to_string(n) +
                                                " elements are not whole blocks");
    switch (t) {
    case DType::q8_0: return dequantize_blocks<BlockQ8_0>(dequantize_q8_0, src, dst, n, k_qk);
    case DType::q4_0: return dequantize_blocks<BlockQ4_0>(dequantize_q4_0, src, dst, n, k_qk);
    case DType::q4_1: return dequantize_blocks<BlockQ4_1>(dequantize_q4_1, src, dst, n, k_qk);
    case DType::q5_0: return dequantize_blocks<BlockQ5_0>(dequantize_q5_0, src, dst, n, k_qk);
    case DType::q5_1: return dequantize_blocks<BlockQ5_1>(dequantize_q5_1, src, dst, n, k_qk);
    case DType::q2_k: return dequantize_blocks<BlockQ2_K>(dequantize_q2_k, src, dst, n, k_qkk);
    case DType::q3_k: return dequantize_blocks<BlockQ3_K>(dequantize_q3_k, src, dst, n, k_qkk);
    case DType::q4_k: return dequantize_blocks<BlockQ4_K>(dequantize_q4_k, src, dst, n, k_qkk);
    case DType::q5_k: return dequantize_blocks<BlockQ5_K>(dequantize_q5_k, src, dst, n, k_qkk);
    case DType::q6_k: return dequantize_blocks<BlockQ6_K>(dequantize_q6_k, src, dst, n, k_qkk);
    default: break;
    }
    RABBIT_CHECK(false, std::string("dequantize ") + dtype_name(t) + ": no decoder");
}

} // namespace rabbit
