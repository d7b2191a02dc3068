// SPDX-License-Identifier: Apache-2.0
// Quantization: f32 values to the blocks of `rabbit split --dtype`. Deterministic, no
// importance matrix.
//
// q8_0 .. q5_1 are byte-identical to gguf-py's gguf.quants.quantize (scripts/quant_reference.py
// checks it), which follows ggml's reference rules: the scale from the block's extreme value,
// each element rounded with that scale. q4_0 and q5_0 add the 8.5 / 16.5 offset in double
// precision and round the sum to f32 before truncating, as gguf-py does to reproduce ggml's
// fused multiply-add; q4_1 / q5_1 round `(x - min) * id + 0.5` as two f32 operations. The file
// is compiled with -ffp-contract=off (CMakeLists.txt) so that no compiler fusion changes that.
//
// The k-quants search their scales the way llama-quantize does without an importance matrix
// (ggml-quants.c describes the method; this is our own code of it), so a split quantized here
// is as good as llama-quantize's of the same type:
//   q4_k / q5_k: each group of 32 fits a scale and a min by weighted least squares over a few
//     candidate scales (weights |x| + rms(group): large values matter more), then the 8 scales
//     and 8 mins become 6-bit multiples of two f16 super-block scales, and every element is
//     rounded again against the scale it will really be decoded with;
//   q6_k: each group of 16 picks a signed scale among 19 candidates by x^2-weighted error,
//     the 16 scales become 8-bit multiples of one f16 scale, and elements are rounded again.
#include "common/quant.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <string>

namespace rabbit {
namespace {

constexpr float k_group_eps = 1e-15f; // a group whose largest |x| is below this is all zeros

// Round to nearest, ties to even, as ggml's nearest_int (lrintf is a library call; this is
// inlined). Below 2^22 in magnitude, v + 1.5 * 2^23 has no fraction bits left, so the addition
// rounds v to an integer in the default mode and the subtraction is exact. Larger values (a
// level the caller clamps anyway) are clamped first.
int nearest(float v) {
    constexpr float limit = 4194303.0f, magic = 12582912.0f;
    v = std::min(limit, std::max(-limit, v));
    return int((v + magic) - magic);
}

uint16_t f16(float v) { return f32_to_f16(v); }

// The first element of largest magnitude, with its sign (ggml and numpy's argmax both take the
// first of equals).
float signed_absmax(const float* x, size_t n) {
    float amax = -1.0f, v = 0.0f;
    for (size_t i = 0; i < n; ++i)
        if (std::fabs(x[i]) > amax) {
            amax = std::fabs(x[i]);
            v = x[i];
        }
    return v;
}

void quantize_q8_0(const float* x, BlockQ8_0& b) {
    float amax = 0.0f;
    for (size_t j = 0; j < k_qk; ++j) amax = std::max(amax, std::fabs(x[j]));
    const float d = amax / 127.0f;
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    for (size_t j = 0; j < k_qk; ++j) b.qs[j] = int8_t(std::round(x[j] * id)); // halves away from zero
    b.d = f16(d);
}

// q4_0 / q5_0: d = -max / 2^(bits-1) so that the extreme value lands on the end of the range
// the other sign lacks; q = trunc(x / d + offset + 0.5), the sum in double rounded to f32.
template <int Levels>
void quantize_symmetric(const float* x, uint16_t* d_out, int* q) {
    const float d = signed_absmax(x, k_qk) / -float(Levels / 2);
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    const double offset = double(Levels / 2) + 0.5;
    for (size_t j = 0; j < k_qk; ++j) {
        const float v = float(double(x[j]) * double(id) + offset);
        q[j] = std::min(Levels - 1, int(std::trunc(v)));
    }
    *d_out = f16(d);
}

// q4_1 / q5_1: d = (max - min) / (levels - 1), q = trunc((x - min) / d + 0.5).
template <int Levels>
void quantize_affine(const float* x, uint16_t* d_out, uint16_t* m_out, int* q) {
    float lo = x[0], hi = x[0];
    for (size_t j = 1; j < k_qk; ++j) {
        lo = std::min(lo, x[j]);
        hi = std::max(hi, x[j]);
    }
    const float d = (hi - lo) / float(Levels - 1);
    const float id = d == 0.0f ? 0.0f : 1.0f / d;
    for (size_t j = 0; j < k_qk; ++j) {
        const float v = (x[j] - lo) * id + 0.5f;
        q[j] = std::min(Levels - 1, int(std::trunc(v)));
    }
    *d_out = f16(d);
    *m_out = f16(lo);
}

// Element j's low 4 bits into qs (low nibbles 0..15, high nibbles 16..31); q5's fifth bit into qh.
void pack_nibbles(const int* q, uint8_t* qs) {
    for (size_t j = 0; j < k_qk / 2; ++j) qs[j] = uint8_t((q[j] & 0xF) | (q[j + 16] & 0xF) << 4);
}
void pack_fifth_bits(const int* q, uint8_t qh[4]) {
    uint32_t bits = 0;
    for (size_t j = 0; j < k_qk; ++j) bits |= uint32_t(q[j] >> 4) << j;
    for (int i = 0; i < 4; ++i) qh[i] = uint8_t(bits >> (8 * i));
}

void quantize_q4_0(const float* x, BlockQ4_0& b) {
    int q[k_qk];
    quantize_symmetric<16>(x, &b.d, q);
    pack_nibbles(q, b.qs);
}
void quantize_q5_0(const float* x, BlockQ5_0& b) {
    int q[k_qk];
    quantize_symmetric<32>(x, &b.d, q);
    pack_nibbles(q, b.qs);
    pack_fifth_bits(q, b.qh);
}
void quantize_q4_1(const float* x, BlockQ4_1& b) {
    int q[k_qk];
    quantize_affine<16>(x, &b.d, &b.m, q);
    pack_nibbles(q, b.qs);
}
void quantize_q5_1(const float* x, BlockQ5_1& b) {
    int q[k_qk];
    quantize_affine<32>(x, &b.d, &b.m, q);
    pack_nibbles(q, b.qs);
    pack_fifth_bits(q, b.qh);
}

// ---- k-quants ----------------------------------------------------------------------------

// A group's x ~= scale * L - min, L in 0..nmax, min >= 0; the search is over the candidate
// steps (nmax + rmin + rdelta * i) / (max - origin), i = 0..steps, each refined by the weighted
// least-squares scale and min for its rounding. The origin starts at the group's minimum and
// moves to the best offset found so far, so later candidates round around the better fit
// (llama-quantize searches so; its quality is the target).
struct MinScaleSearch {
    int nmax;
    float rmin, rdelta;
    int steps;
};

struct GroupFit {
    float scale = 0.0f, min = 0.0f; // x ~= scale * L - min
};

float weighted_error(const float* x, const float* w, const uint8_t* L, int n, float scale, float offset) {
    float err = 0.0f;
    for (int i = 0; i < n; ++i) {
        const float diff = scale * float(L[i]) + offset - x[i];
        err += w[i] * (diff * diff);
    }
    return err;
}

// Rounds x to L = clamp(round(iscale * (x - lo)), 0, nmax).
void round_affine(const float* x, int n, float iscale, float lo, int nmax, uint8_t* L) {
    for (int i = 0; i < n; ++i) L[i] = uint8_t(std::clamp(nearest(iscale * (x[i] - lo)), 0, nmax));
}

GroupFit fit_scale_min(const float* x, const float* w, int n, const MinScaleSearch& s, uint8_t* L) {
    float lo = x[0], hi = x[0], sum_w = 0.0f, sum_x = 0.0f;
    for (int i = 0; i < n; ++i) {
        lo = std::min(lo, x[i]);
        hi = std::max(hi, x[i]);
        sum_w += w[i];
        sum_x += w[i] * x[i];
    }
    lo = std::min(lo, 0.0f); // the offset only ever subtracts: min >= 0
    if (hi == lo) {
        std::fill(L, L + n, uint8_t(0));
        return {0.0f, -lo};
    }
    float iscale = float(s.nmax) / (hi - lo);
    float best_scale = 1.0f / iscale, best_offset = lo;
    round_affine(x, n, iscale, lo, s.nmax, L);
    float best_err = weighted_error(x, w, L, n, best_scale, best_offset);
    uint8_t cand[k_qkk];
    for (int step = 0; step <= s.steps; ++step) {
        iscale = (s.rmin + s.rdelta * float(step) + float(s.nmax)) / (hi - best_offset);
        round_affine(x, n, iscale, best_offset, s.nmax, cand);
        float sum_l = 0.0f, sum_l2 = 0.0f, sum_xl = 0.0f;
        for (int i = 0; i < n; ++i) {
            const float l = float(cand[i]);
            sum_l += w[i] * l;
            sum_l2 += w[i] * l * l;
            sum_xl += w[i] * l * x[i];
        }
        const float det = sum_w * sum_l2 - sum_l * sum_l;
        if (!(det > 0.0f)) continue;
        float scale = (sum_w * sum_xl - sum_x * sum_l) / det;
        float offset = (sum_l2 * sum_x - sum_l * sum_xl) / det;
        if (offset > 0.0f) { // a positive offset would be a negative min: pin it at zero
            offset = 0.0f;
            scale = sum_xl / sum_l2;
        }
        const float err = weighted_error(x, w, cand, n, scale, offset);
        if (err < best_err) {
            std::copy(cand, cand + n, L);
            best_err = err;
            best_scale = scale;
            best_offset = offset;
        }
    }
    return {best_scale, -best_offset};
}

// q4_k / q5_k: the fitted scales and mins of the 8 groups of 32, as 6-bit multiples of the
// super-block's d and dmin; then L (0..nmax) against the decoded scales.
void quantize_k_groups(const float* x, const MinScaleSearch& s, uint16_t* d_out, uint16_t* dmin_out,
                       uint8_t scales[k_k_scale_bytes], uint8_t L[k_qkk]) {
    GroupFit fits[8];
    float max_scale = 0.0f, max_min = 0.0f;
    for (int g = 0; g < 8; ++g) {
        const float* xg = x + 32 * g;
        float sum_x2 = 0.0f;
        for (int l = 0; l < 32; ++l) sum_x2 += xg[l] * xg[l];
        const float rms = std::sqrt(sum_x2 / 32.0f);
        float w[32];
        for (int l = 0; l < 32; ++l) w[l] = rms + std::fabs(xg[l]);
        fits[g] = fit_scale_min(xg, w, 32, s, L + 32 * g);
        max_scale = std::max(max_scale, fits[g].scale);
        max_min = std::max(max_min, fits[g].min);
    }
    const float inv_scale = max_scale > 0.0f ? 63.0f / max_scale : 0.0f;
    const float inv_min = max_min > 0.0f ? 63.0f / max_min : 0.0f;
    std::memset(scales, 0, k_k_scale_bytes);
    for (int g = 0; g < 8; ++g) {
        const int ls = std::min(63, nearest(inv_scale * fits[g].scale));
        const int lm = std::min(63, nearest(inv_min * fits[g].min));
        // The inverse of k_scale_min: groups 0..3 in the low 6 bits of bytes g and g + 4;
        // groups 4..7 in the nibbles of byte g + 4 and the top 2 bits of bytes g - 4 and g.
        if (g < 4) {
            scales[g] = uint8_t(ls);
            scales[g + 4] = uint8_t(lm);
        } else {
            scales[g + 4] = uint8_t((ls & 0xF) | (lm & 0xF) << 4);
            scales[g - 4] |= uint8_t((ls >> 4) << 6);
            scales[g] |= uint8_t((lm >> 4) << 6);
        }
    }
    *d_out = f16(max_scale / 63.0f);
    *dmin_out = f16(max_min / 63.0f);
    const float d = f16_to_f32(*d_out), dmin = f16_to_f32(*dmin_out);
    for (int g = 0; g < 8; ++g) {
        uint8_t sc = 0, m = 0;
        k_scale_min(g, scales, &sc, &m);
        const float dg = d * float(sc);
        if (dg == 0.0f) continue; // decodes to -dmin * m whatever L is
        const float mg = dmin * float(m);
        for (int l = 0; l < 32; ++l)
            L[32 * g + l] = uint8_t(std::clamp(nearest((x[32 * g + l] + mg) / dg), 0, s.nmax));
    }
}

// Element e = 64*c + 32*k + l's low 4 bits go to nibble k of qs[32*c + l] (see dequantize).
void pack_k_nibbles(const uint8_t L[k_qkk], uint8_t qs[k_qkk / 2]) {
    for (int c = 0; c < 4; ++c)
        for (int l = 0; l < 32; ++l) qs[32 * c + l] = uint8_t((L[64 * c + l] & 0xF) | (L[64 * c + 32 + l] & 0xF) << 4);
}

void quantize_q4_k(const float* x, BlockQ4_K& b) {
    uint8_t L[k_qkk];
    quantize_k_groups(x, MinScaleSearch{15, -1.0f, 0.1f, 20}, &b.d, &b.dmin, b.scales, L);
    pack_k_nibbles(L, b.qs);
}

void quantize_q5_k(const float* x, BlockQ5_K& b) {
    uint8_t L[k_qkk];
    quantize_k_groups(x, MinScaleSearch{31, -0.5f, 0.1f, 15}, &b.d, &b.dmin, b.scales, L);
    pack_k_nibbles(L, b.qs);
    std::memset(b.qh, 0, sizeof b.qh);
    for (int e = 0; e < int(k_qkk); ++e) b.qh[e % 32] |= uint8_t((L[e] >> 4) << (e / 32));
}

// q6_k's group of 16: x ~= scale * (L - 32), L in 0..63. The candidates put the extreme value
// at -(32 + 0.1 i) steps, i = -9..9; each is refined by its x^2-weighted least-squares scale
// and kept when it explains more of the signal (a larger sum_lx^2 / sum_l2).
float fit_signed_scale(const float* x, int8_t* L) {
    constexpr int n = 16, nmax = 32;
    const float vmax = signed_absmax(x, n);
    if (std::fabs(vmax) < k_group_eps) {
        std::fill(L, L + n, int8_t(0));
        return 0.0f;
    }
    auto round_all = [&](float iscale, int8_t* out, float* sum_lx, float* sum_l2) {
        *sum_lx = *sum_l2 = 0.0f;
        for (int i = 0; i < n; ++i) {
            const int l = std::clamp(nearest(iscale * x[i]), -nmax, nmax - 1);
            out[i] = int8_t(l);
            const float w = x[i] * x[i];
            *sum_lx += w * x[i] * float(l);
            *sum_l2 += w * float(l) * float(l);
        }
    };
    float sum_lx = 0.0f, sum_l2 = 0.0f;
    round_all(-float(nmax) / vmax, L, &sum_lx, &sum_l2);
    float scale = sum_l2 != 0.0f ? sum_lx / sum_l2 : 0.0f;
    float best = scale * sum_lx;
    int8_t cand[n];
    for (int i = -9; i <= 9; ++i) {
        if (i == 0) continue;
        round_all(-(float(nmax) + 0.1f * float(i)) / vmax, cand, &sum_lx, &sum_l2);
        if (sum_l2 > 0.0f && sum_lx * sum_lx > best * sum_l2) {
            std::copy(cand, cand + n, L);
            scale = sum_lx / sum_l2;
            best = scale * sum_lx;
        }
    }
    return scale;
}

void quantize_q6_k(const float* x, BlockQ6_K& b) {
    int8_t L[k_qkk]; // -32..31
    float scales[16];
    float max_scale = 0.0f, max_abs = 0.0f;
    for (int g = 0; g < 16; ++g) {
        scales[g] = fit_signed_scale(x + 16 * g, L + 16 * g);
        if (std::fabs(scales[g]) > max_abs) {
            max_abs = std::fabs(scales[g]);
            max_scale = scales[g];
        }
    }
    std::memset(&b, 0, sizeof b);
    if (max_abs < k_group_eps) return; // d = 0: all zeros
    // The largest scale becomes -128 (int8's end without a positive twin), as the groups do.
    const float iscale = -128.0f / max_scale;
    b.d = f16(1.0f / iscale);
    for (int g = 0; g < 16; ++g) b.scales[g] = int8_t(std::min(127, nearest(iscale * scales[g])));
    const float d = f16_to_f32(b.d);
    for (int g = 0; g < 16; ++g) {
        const float dg = d * float(b.scales[g]);
        if (dg == 0.0f) continue;
        for (int l = 0; l < 16; ++l) L[16 * g + l] = int8_t(std::clamp(nearest(x[16 * g + l] / dg), -32, 31));
    }
    // Element e = 128*h + 32*s + l (see dequantize): low 4 bits to nibble s / 2 of
    // ql[64*h + 32*(s % 2) + l], high 2 bits to bits 2s..2s+1 of qh[32*h + l].
    for (int e = 0; e < int(k_qkk); ++e) {
        const int h = e / 128, s = (e / 32) % 4, l = e % 32;
        const int q = L[e] + 32;
        b.ql[64 * h + 32 * (s % 2) + l] |= uint8_t((q & 0xF) << (4 * (s / 2)));
        b.qh[32 * h + l] |= uint8_t((q >> 4) << (2 * s));
    }
}

template <typename Block>
void quantize_blocks(void (*one)(const float*, Block&), const float* src, void* dst, size_t n, size_t qk) {
    auto* blocks = static_cast<Block*>(dst);
    for (size_t i = 0; i < n / qk; ++i) one(src + i * qk, blocks[i]);
}

} // namespace

bool can_quantize(DType t) {
    switch (t) {
    case DType::q8_0:
    case DType::q4_0:
    case DType::q4_1:
    case DType::q5_0:
    case DType::q5_1:
    case DType::q4_k:
    case DType::q5_k:
    case DType::q6_k: return true;
    default: return false;
    }
}

void quantize(DType t, const float* src, void* dst, size_t n) {
    RABBIT_CHECK(can_quantize(t), std::string("quantize: rabbit does not write ") + dtype_name(t));
    RABBIT_CHECK(n % dtype_block(t) == 0, std::string("quantize ") + dtype_name(t) + ": " + std::to_string(n) +
                                              " elements are not whole blocks");
    switch (t) {
    case DType::q8_0: return quantize_blocks<BlockQ8_0>(quantize_q8_0, src, dst, n, k_qk);
    case DType::q4_0: return quantize_blocks<BlockQ4_0>(quantize_q4_0, src, dst, n, k_qk);
    case DType::q4_1: return quantize_blocks<BlockQ4_1>(quantize_q4_1, src, dst, n, k_qk);
    case DType::q5_0: return quantize_blocks<BlockQ5_0>(quantize_q5_0, src, dst, n, k_qk);
    case DType::q5_1: return quantize_blocks<BlockQ5_1>(quantize_q5_1, src, dst, n, k_qk);
    case DType::q4_k: return quantize_blocks<BlockQ4_K>(quantize_q4_k, src, dst, n, k_qkk);
    case DType::q5_k: return quantize_blocks<BlockQ5_K>(quantize_q5_k, src, dst, n, k_qkk);
    case DType::q6_k: return quantize_blocks<BlockQ6_K>(quantize_q6_k, src, dst, n, k_qkk);
    default: break;
    }
}

} // namespace rabbit
