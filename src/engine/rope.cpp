// SPDX-License-Identifier: Apache-2.0
// The arithmetic follows transformers' modeling_rope_utils.py operation by operation, in the
// precision it uses: torch tensors in f32, Python scalars in double.
#include "engine/rope.h"

#include <algorithm>
#include <cmath>

namespace rabbit {

namespace {

constexpr double k_pi = 3.14159265358979323846;

// base ** (arange(0, dim, 2).float() / dim), in f32.   [dim / 2]
std::vector<float> pos_freqs(float base, uint32_t dim) {
    std::vector<float> p(dim / 2);
    for (size_t i = 0; i < p.size(); ++i) p[i] = std::pow(base, float(2 * i) / float(dim));
    return p;
}

std::vector<float> default_inv_freq(double theta, uint32_t dim) {
    std::vector<float> inv = pos_freqs(float(theta), dim);
    for (auto& f : inv) f = 1.0f / f;
    return inv;
}

// Long wavelengths are slowed by `factor`, short ones kept, and the band between
// interpolated (transformers' _compute_llama3_parameters).
void apply_llama3(const RopeScaling& s, std::vector<float>& inv) {
    const float old_ctx = float(s.original_max_position_embeddings);
    const float low_wavelen = old_ctx / float(s.low_freq_factor);
    const float high_wavelen = old_ctx / float(s.high_freq_factor);
    for (auto& f : inv) {
        const float wavelen = 2.0f * float(k_pi) / f;
        if (wavelen < high_wavelen) continue;
        if (wavelen > low_wavelen) {
            f = f / float(s.factor);
            continue;
        }
        const float smooth = (old_ctx / wavelen - float(s.low_freq_factor)) / float(s.high_freq_factor - s.low_freq_factor);
        f = (1.0f - smooth) * f / float(s.factor) + smooth * f;
    }
}

// YaRN: pairs that turn more than beta_fast times over the original context keep their
// frequency (extrapolation), pairs that turn fewer than beta_slow times are divided by
// `factor` (interpolation), and a linear ramp over the pair index blends the ones between.
std::vector<float> yarn_inv_freq(const ModelConfig& c) {
    const RopeScaling& s = c.rope_scaling;
    const uint32_t dim = c.head_dim;
    const double base = c.rope_theta;
    // The pair index at which a frequency turns `rotations` times over the original context.
    auto correction_dim = [&](double rotations) {
        return double(dim) * std::log(double(s.original_max_position_embeddings) / (rotations * 2 * k_pi)) /
               (2 * std::log(base));
    };
    double low = correction_dim(s.beta_fast), high = correction_dim(s.beta_slow);
    if (s.truncate) low = std::floor(low), high = std::ceil(high);
    low = std::max(low, 0.0), high = std::min(high, double(dim - 1));
    if (low == high) high += 0.001; // transformers: prevents a division by zero

    const std::vector<float> p = pos_freqs(float(base), dim);
    std::vector<float> inv(p.size());
    for (size_t i = 0; i < p.size(); ++i) {
        const float extrapolation = 1.0f / p[i];
        const float interpolation = 1.0f / (float(s.factor) * p[i]);
        const float ramp = std::clamp((float(i) - float(low)) / float(high - low), 0.0f, 1.0f);
        const float keep = 1.0f - ramp;
        inv[i] = interpolation * (1.0f - keep) + extrapolation * keep;
    }
    return inv;
}

// Dynamic NTK: the base grows with the sequence past max_position_embeddings,
// base * (factor * len / max - (factor - 1)) ** (dim / (dim - 2)), in f32 as transformers
// computes it from a tensor seq_len.
std::vector<float> dynamic_inv_freq(const ModelConfig& c, uint64_t seq_len) {
    const uint64_t len = std::max<uint64_t>(seq_len, c.max_position_embeddings);
    const float factor = float(c.rope_scaling.factor);
    const float ratio = factor * float(len) / float(c.max_position_embeddings) - float(c.rope_scaling.factor - 1);
    const float base = float(c.rope_theta) * std::pow(ratio, float(double(c.head_dim) / double(c.head_dim - 2)));
    std::vector<float> inv = pos_freqs(base, c.head_dim);
    for (auto& f : inv) f = 1.0f / f;
    return inv;
}

// Longrope: each pair's frequency divided by its short factor, or by its long one for a
// forward past the original context.
std::vector<float> longrope_inv_freq(const ModelConfig& c, uint64_t seq_len) {
    const RopeScaling& s = c.rope_scaling;
    const auto& ext = seq_len > s.original_max_position_embeddings ? s.long_factor : s.short_factor;
    std::vector<float> inv = pos_freqs(float(c.rope_theta), c.head_dim);
    for (size_t i = 0; i < inv.size(); ++i) inv[i] = 1.0f / (float(ext[i]) * inv[i]);
    return inv;
}

double yarn_mscale(double scale, double mscale) { return scale <= 1 ? 1.0 : 0.1 * mscale * std::log(scale) + 1.0; }

} // namespace

std::vector<float> rope_inv_freq(const ModelConfig& c, uint64_t seq_len) {
    const RopeScaling& s = c.rope_scaling;
    switch (s.type) {
    case RopeScaling::Type::yarn: return yarn_inv_freq(c);
    case RopeScaling::Type::longrope: return longrope_inv_freq(c, seq_len);
    case RopeScaling::Type::dynamic:
        if (seq_len > c.max_position_embeddings) return dynamic_inv_freq(c, seq_len);
        break;
    default: break;
    }
    std::vector<float> inv = default_inv_freq(c.rope_theta, c.head_dim);
    if (s.type == RopeScaling::Type::linear)
        for (auto& f : inv) f /= float(s.factor);
    if (s.type == RopeScaling::Type::llama3) apply_llama3(s, inv);
    return inv;
}

double rope_attention_factor(const ModelConfig& c) {
    const RopeScaling& s = c.rope_scaling;
    if (s.type == RopeScaling::Type::yarn) {
        if (s.attention_factor > 0) return s.attention_factor;
        if (s.mscale != 0 && s.mscale_all_dim != 0) return yarn_mscale(s.factor, s.mscale) / yarn_mscale(s.factor, s.mscale_all_dim);
        return yarn_mscale(s.factor, 1.0);
    }
    if (s.type == RopeScaling::Type::longrope) {
        if (s.attention_factor > 0) return s.attention_factor;
        const double original = double(s.original_max_position_embeddings);
        const double factor = s.factor > 0 ? s.factor : double(c.max_position_embeddings) / original;
        return factor <= 1 ? 1.0 : std::sqrt(1 + std::log(factor) / std::log(original));
    }
    return 1.0;
}

void rope_cos_sin(const std::vector<float>& inv_freq, int64_t position, float* cos, float* sin, float attention_factor) {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
        const float angle = float(position) * inv_freq[i];
        cos[i] = std::cos(angle) * attention_factor;
        sin[i] = std::sin(angle) * attention_factor;
    }
}

RopeTables::RopeTables(const ModelConfig& c) : c_(c), attention_factor_(float(rope_attention_factor(c))) { reset(); }

void RopeTables::reset() {
    inv_freq_ = rope_inv_freq(c_);
    max_seq_len_cached_ = c_.max_position_embeddings;
}

void RopeTables::begin_forward(uint64_t seq_len) {
    if (c_.rope_scaling.type == RopeScaling::Type::longrope) {
        inv_freq_ = rope_inv_freq(c_, seq_len);
        return;
    }
    if (c_.rope_scaling.type != RopeScaling::Type::dynamic) return;
    const uint64_t original = c_.max_position_embeddings;
    if (seq_len > max_seq_len_cached_) { // growth
        inv_freq_ = rope_inv_freq(c_, seq_len);
        max_seq_len_cached_ = seq_len;
    } else if (seq_len < original && max_seq_len_cached_ > original) { // back inside: the unscaled frequencies
        inv_freq_ = rope_inv_freq(c_);
        max_seq_len_cached_ = original;
    }
}

void RopeTables::cos_sin(int64_t position, float* cos, float* sin) const {
    rope_cos_sin(inv_freq_, position, cos, sin, attention_factor_);
}

} // namespace rabbit
