// SPDX-License-Identifier: Apache-2.0
// Llama 3 RoPE scaling in a GGUF. llama.cpp's converter turns a config's llama3 rope_scaling
// into the tensor rope_freqs.weight (one divisor per frequency) and writes no scaling
// metadata. rabbit recovers the parameters from the divisors, so a GGUF split gets the
// config.json rope_scaling of its Hugging Face original and every engine stays as it is.
#pragma once

#include "model/config.h"

#include <cstdint>
#include <optional>
#include <vector>

namespace rabbit {

// The divisors llama.cpp's converter writes for `s` (llama3), in f32 as it computes them.
std::vector<float> llama3_rope_factors(const RopeScaling& s, double theta, uint64_t head_dim);

// The llama3 scaling whose divisors are `factors` (within 4 ulps each: libm's pow is not
// torch's); nullopt when no candidate reproduces them. All divisors 1 give type none.
std::optional<RopeScaling> llama3_scaling_of_factors(const std::vector<float>& factors, double theta,
                                                     uint64_t head_dim, uint64_t context_length);

} // namespace rabbit
