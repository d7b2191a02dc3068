// SPDX-License-Identifier: Apache-2.0
#include "engine/rope.h"

#include <cmath>

namespace rabbit {

std::vector<float> rope_inv_freq(const ModelConfig& c) {
    const size_t half = c.head_dim / 2;
    std::vector<float> inv(half);
    // transformers: 1 / base ** (arange(0, dim, 2).float() / dim), in f32.
    for (size_t i = 0; i < half; ++i) {
        const float exponent = float(2 * i) / float(c.head_dim);
        inv[i] = 1.0f / std::pow(float(c.rope_theta), exponent);
    }
    const RopeScaling& s = c.rope_scaling;
    if (s.type == RopeScaling::Type::linear) {
        for (auto& f : inv) f /= float(s.factor);
    } else if (s.type == RopeScaling::Type::llama3) {
        // Long wavelengths are slowed by `factor`, short ones kept, and the band between
        // interpolated (transformers' _compute_llama3_parameters).
        const float old_ctx = float(s.original_max_position_embeddings);
        const float low_wavelen = old_ctx / float(s.low_freq_factor);
        const float high_wavelen = old_ctx / float(s.high_freq_factor);
        const float pi = 3.14159265358979323846f;
        for (auto& f : inv) {
            const float wavelen = 2.0f * pi / f;
            if (wavelen < high_wavelen) continue;
            if (wavelen > low_wavelen) {
                f = f / float(s.factor);
                continue;
            }
            const float smooth =
                (old_ctx / wavelen - float(s.low_freq_factor)) / float(s.high_freq_factor - s.low_freq_factor);
            f = (1.0f - smooth) * f / float(s.factor) + smooth * f;
        }
    }
    return inv;
}

void rope_cos_sin(const std::vector<float>& inv_freq, int64_t position, float* cos, float* sin) {
    for (size_t i = 0; i < inv_freq.size(); ++i) {
        const float angle = float(position) * inv_freq[i];
        cos[i] = std::cos(angle);
        sin[i] = std::sin(angle);
    }
}

} // namespace rabbit
