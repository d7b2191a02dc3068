// SPDX-License-Identifier: Apache-2.0
// Rotary position embedding tables: the inverse frequencies of a config (default, linear or
// llama3 scaling), and the cos/sin of a position, computed in f32 as the reference does.
#pragma once

#include "model/config.h"

#include <vector>

namespace rabbit {

// [head_dim / 2] inverse frequencies, scaling applied.
std::vector<float> rope_inv_freq(const ModelConfig& c);
// cos and sin of position * inv_freq.   cos, sin [inv_freq.size()]
void rope_cos_sin(const std::vector<float>& inv_freq, int64_t position, float* cos, float* sin);

} // namespace rabbit
