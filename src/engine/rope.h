// SPDX-License-Identifier: Apache-2.0
// Rotary position embedding tables, computed in f32 as transformers 5 computes them: the
// inverse frequencies of a config (default, linear, llama3, yarn, dynamic NTK or longrope
// scaling), the attention factor that multiplies cos and sin (YaRN's mscale, longrope's), and
// the cos/sin of a position. Both engines take their tables from here.
#pragma once

#include "model/config.h"

#include <cstdint>
#include <vector>

namespace rabbit {

// [head_dim / 2] inverse frequencies, scaling applied, for a forward whose positions end
// before seq_len (its last position + 1). Only dynamic NTK and longrope depend on seq_len:
// 0 gives the frequencies transformers starts from (dynamic: unscaled; longrope: short).
std::vector<float> rope_inv_freq(const ModelConfig& c, uint64_t seq_len = 0);
// The factor on cos and sin: 1 except for yarn and longrope.
double rope_attention_factor(const ModelConfig& c);
// cos and sin of position * inv_freq, times the attention factor.   cos, sin [inv_freq.size()]
void rope_cos_sin(const std::vector<float>& inv_freq, int64_t position, float* cos, float* sin,
                  float attention_factor = 1.0f);

// The tables of one sequence. Dynamic NTK keeps state between forwards as transformers'
// dynamic_rope_update does: the frequencies are recomputed when a forward reaches past the
// longest one so far (beyond max_position_embeddings), and put back to the unscaled ones
// when a forward ends inside max_position_embeddings after such growth. Longrope picks its
// long factors for a forward that ends past the original context.
class RopeTables {
public:
    explicit RopeTables(const ModelConfig& c);
    // A forward of tokens at positions [.., seq_len) begins: all its positions, in however
    // many passes of --batch tokens, use the frequencies chosen here (transformers runs a
    // prompt as one forward; a decode step is a forward of one token).
    void begin_forward(uint64_t seq_len);
    // A new sequence: the state of a freshly loaded model.
    void reset();
    // cos, sin [head_dim / 2] of one position, attention factor applied.
    void cos_sin(int64_t position, float* cos, float* sin) const;
    const std::vector<float>& inv_freq() const { return inv_freq_; }

private:
    const ModelConfig& c_;
    float attention_factor_ = 1.0f;
    std::vector<float> inv_freq_;
    uint64_t max_seq_len_cached_ = 0; // dynamic: transformers' max_seq_len_cached
};

} // namespace rabbit
