// SPDX-License-Identifier: Apache-2.0
#include "format/gguf_rope.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

namespace rabbit {

namespace {

// The converter computes with torch in f32: base ** (arange / dim) as a double pow rounded
// to f32, `a / t` for a tensor t as reciprocal(t) * a, and `t / a` as a true f32 division.
float inv_freq(double theta, uint64_t head_dim, size_t i) {
    const float exponent = float(2 * i) / float(head_dim);
    return 1.0f / float(std::pow(double(float(theta)), double(exponent)));
}

uint32_t ordered_bits(float f) {
    uint32_t u;
    std::memcpy(&u, &f, 4);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

bool near_ulps(float a, float b, uint32_t ulps) {
    if (!std::isfinite(a) || !std::isfinite(b)) return false;
    const uint32_t x = ordered_bits(a), y = ordered_bits(b);
    return (x > y ? x - y : y - x) <= ulps;
}

bool reproduces(const std::vector<float>& factors, const RopeScaling& s, double theta, uint64_t head_dim) {
    const std::vector<float> mine = llama3_rope_factors(s, theta, head_dim);
    for (size_t i = 0; i < factors.size(); ++i)
        if (!near_ulps(mine[i], factors[i], 4)) return false;
    return true;
}

} // namespace

std::vector<float> llama3_rope_factors(const RopeScaling& s, double theta, uint64_t head_dim) {
    const double old_ctx = double(s.original_max_position_embeddings);
    const float low_wavelen = float(old_ctx / s.low_freq_factor), high_wavelen = float(old_ctx / s.high_freq_factor);
    const float two_pi = float(2.0 * 3.14159265358979323846);
    std::vector<float> out(head_dim / 2);
    for (size_t i = 0; i < out.size(); ++i) {
        const float wavelen = (1.0f / inv_freq(theta, head_dim, i)) * two_pi;
        if (wavelen < high_wavelen) {
            out[i] = 1.0f;
        } else if (wavelen > low_wavelen) {
            out[i] = float(s.factor);
        } else {
            const float smooth = ((1.0f / wavelen) * float(old_ctx) - float(s.low_freq_factor)) /
                                 float(s.high_freq_factor - s.low_freq_factor);
            out[i] = 1.0f / ((1.0f - smooth) / float(s.factor) + smooth);
        }
    }
    return out;
}

std::optional<RopeScaling> llama3_scaling_of_factors(const std::vector<float>& factors, double theta,
                                                     uint64_t head_dim, uint64_t context_length) {
    if (factors.size() != head_dim / 2 || factors.empty()) return std::nullopt;
    for (float f : factors)
        if (!(f >= 1.0f) || !std::isfinite(f)) return std::nullopt;
    const float factor = *std::max_element(factors.begin(), factors.end());
    if (factor == 1.0f) return RopeScaling{}; // no frequency slowed: no scaling at all
    // The rule depends on original_max / low and original_max / high only up to rounding, so
    // candidates are tried in the order of the published models (low 1, high 4, 8192 first)
    // and the first that reproduces every divisor is taken. When no frequency falls in the
    // transition band, every match gives transformers the same frequencies.
    std::vector<uint64_t> olds = {8192};
    for (uint64_t o = 1ull << 24; o >= 16; o /= 2)
        if (o != 8192) olds.push_back(o);
    if (context_length) olds.push_back(context_length);
    if (context_length && std::fmod(double(context_length), double(factor)) == 0)
        olds.push_back(uint64_t(double(context_length) / double(factor)));
    const double lows[] = {1, 0.5, 2, 0.25, 1.5, 3, 4, 8};
    const double highs[] = {4, 2, 8, 16, 3, 6, 1, 32, 64};
    for (double low : lows)
        for (double high : highs) {
            if (!(high > low)) continue;
            for (uint64_t old : olds) {
                RopeScaling s;
                s.type = RopeScaling::Type::llama3;
                s.factor = double(factor);
                s.low_freq_factor = low;
                s.high_freq_factor = high;
                s.original_max_position_embeddings = old;
                if (reproduces(factors, s, theta, head_dim)) return s;
            }
        }
    return std::nullopt;
}

} // namespace rabbit
