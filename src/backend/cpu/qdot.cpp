// SPDX-License-Identifier: Apache-2.0
// The portable quantized dot product: the definition the vector paths follow. Every weight
// type decodes a block into integer quanta q, groups of them with an integer scale s_g and
// offset m_g, and two f32 factors, so that
//     w = A * s_g * q - B * m_g,
// and a block's dot with activation quanta x (scale dx) is
//     dx * (A * sum_g s_g * sum_{e in g} q_e x_e  -  B * sum_g m_g * sum_{e in g} x_e),
// both sums exact in integers.
#include "backend/cpu/qkernels.h"

#include "common/quant.h"

#include <cstring>

namespace rabbit::cpu {

namespace {

struct Decoded {
    int n = 32, group = 32;
    int q[256];
    int s[16], m[16];
    float a = 0, b = 0;
};

float half(uint16_t h) { return f16_to_f32(h); }

// Element j of a 32-block's 4-bit quanta: low nibbles first, then high.
int nibble(const uint8_t* qs, int j) { return j < 16 ? qs[j] & 15 : qs[j - 16] >> 4; }

void decode_legacy(DType t, const uint8_t* p, Decoded& o) {
    o.s[0] = 1;
    o.m[0] = 0;
    if (t == DType::q8_0) {
        const auto* b = reinterpret_cast<const BlockQ8_0*>(p);
        o.a = half(b->d);
        for (int j = 0; j < 32; ++j) o.q[j] = b->qs[j];
    } else if (t == DType::q4_0 || t == DType::q4_1) {
        const uint8_t* qs = t == DType::q4_0 ? reinterpret_cast<const BlockQ4_0*>(p)->qs
                                             : reinterpret_cast<const BlockQ4_1*>(p)->qs;
        for (int j = 0; j < 32; ++j) o.q[j] = nibble(qs, j);
    } else {
        const uint8_t* qs = t == DType::q5_0 ? reinterpret_cast<const BlockQ5_0*>(p)->qs
                                             : reinterpret_cast<const BlockQ5_1*>(p)->qs;
        const uint8_t* qhp = t == DType::q5_0 ? reinterpret_cast<const BlockQ5_0*>(p)->qh
                                              : reinterpret_cast<const BlockQ5_1*>(p)->qh;
        uint32_t qh;
        std::memcpy(&qh, qhp, 4);
        for (int j = 0; j < 32; ++j) o.q[j] = nibble(qs, j) | int((qh >> j) & 1) << 4;
    }
    uint16_t d, m;
    std::memcpy(&d, p, 2);
    std::memcpy(&m, p + 2, 2);
    if (t == DType::q4_0 || t == DType::q5_0) { // w = d * (q - 8) or d * (q - 16)
        o.a = o.b = half(d);
        o.m[0] = t == DType::q4_0 ? 8 : 16;
    } else if (t == DType::q4_1 || t == DType::q5_1) { // w = d * q + m
        o.a = half(d);
        o.b = -half(m);
        o.m[0] = 1;
    }
}

void decode_k45(DType t, const uint8_t* p, Decoded& o) {
    o.n = 256;
    o.group = 32;
    const auto* b4 = reinterpret_cast<const BlockQ4_K*>(p);
    const auto* b5 = reinterpret_cast<const BlockQ5_K*>(p);
    const uint8_t* scales = t == DType::q4_k ? b4->scales : b5->scales;
    const uint8_t* qs = t == DType::q4_k ? b4->qs : b5->qs;
    o.a = half(b4->d);
    o.b = half(b4->dmin);
    for (int g = 0; g < 8; ++g) {
        uint8_t sc, mn;
        k_scale_min(g, scales, &sc, &mn);
        o.s[g] = sc;
        o.m[g] = mn;
    }
    for (int e = 0; e < 256; ++e) {
        const int j = e / 64, l = e % 32, hi = (e / 32) & 1;
        o.q[e] = (qs[32 * j + l] >> (4 * hi)) & 15;
        if (t == DType::q5_k) o.q[e] |= ((b5->qh[l] >> (e / 32)) & 1) << 4;
    }
}

void decode_k16(DType t, const uint8_t* p, Decoded& o) {
    o.n = 256;
    o.group = 16;
    if (t == DType::q6_k) {
        const auto* b = reinterpret_cast<const BlockQ6_K*>(p);
        o.a = o.b = half(b->d);
        for (int g = 0; g < 16; ++g) o.s[g] = b->scales[g], o.m[g] = 32 * b->scales[g];
        for (int e = 0; e < 256; ++e) {
            const int h = e / 128, r = e % 128, l = r % 32, j = r / 32;
            const int low = (b->ql[64 * h + r % 64] >> (4 * (r / 64))) & 15;
            o.q[e] = low | ((b->qh[32 * h + l] >> (2 * j)) & 3) << 4;
        }
    } else if (t == DType::q2_k) {
        const auto* b = reinterpret_cast<const BlockQ2_K*>(p);
        o.a = half(b->d);
        o.b = half(b->dmin);
        for (int g = 0; g < 16; ++g) o.s[g] = b->scales[g] & 15, o.m[g] = b->scales[g] >> 4;
        for (int e = 0; e < 256; ++e) o.q[e] = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
    } else { // q3_k: w = d * (sc - 32) * (low | high << 2) - 4), the high bit stored inverted
        const auto* b = reinterpret_cast<const BlockQ3_K*>(p);
        o.a = o.b = half(b->d);
        for (int g = 0; g < 16; ++g) {
            const int low = g < 8 ? b->scales[g] & 15 : b->scales[g - 8] >> 4;
            const int high = (b->scales[8 + g % 4] >> (2 * (g / 4))) & 3;
            o.s[g] = (low | high << 4) - 32;
            o.m[g] = 4 * o.s[g];
        }
        for (int e = 0; e < 256; ++e) {
            const int low = (b->qs[32 * (e / 128) + e % 32] >> (2 * ((e % 128) / 32))) & 3;
            const int high = (b->hmask[e % 32] >> (e / 32)) & 1;
            o.q[e] = low | high << 2;
        }
    }
}

void decode(DType t, const uint8_t* p, Decoded& o) {
    if (!uses_q8k(t)) return decode_legacy(t, p, o);
    if (t == DType::q4_k || t == DType::q5_k) return decode_k45(t, p, o);
    decode_k16(t, p, o);
}

// A decoded block dotted with one activation block: x [o.n] quanta, dx their scale.
float block_dot(const Decoded& o, const int8_t* x, float dx) {
    int64_t qx = 0, mx = 0;
    for (int g = 0; g < o.n / o.group; ++g) {
        int64_t sq = 0, sx = 0;
        for (int e = g * o.group; e < (g + 1) * o.group; ++e) {
            sq += int64_t(o.q[e]) * x[e];
            sx += x[e];
        }
        qx += o.s[g] * sq;
        mx += o.m[g] * sx;
    }
    return dx * (o.a * float(qx) - o.b * float(mx));
}

} // namespace

void qdot_portable(DType t, const uint8_t* wrow, size_t cols, const uint8_t* xq, size_t xstride, size_t nt,
                   float* out) {
    const size_t bs = dtype_block(t), bb = dtype_block_bytes(t), nb = cols / bs;
    Decoded o;
    for (size_t j = 0; j < nt; ++j) out[j] = 0.0f;
    for (size_t b = 0; b < nb; ++b) {
        decode(t, wrow + b * bb, o);
        for (size_t j = 0; j < nt; ++j) {
            const uint8_t* xt = xq + j * xstride;
            if (bs == k_qkk) {
                const auto& a = reinterpret_cast<const ActQ8K*>(xt)[b];
                out[j] += block_dot(o, a.q, a.d);
            } else {
                const auto& a = reinterpret_cast<const ActQ8*>(xt)[b];
                out[j] += block_dot(o, a.q, a.d);
            }
        }
    }
}

} // namespace rabbit::cpu
