// SPDX-License-Identifier: Apache-2.0
// Views of a unit's tensors, by role, pointing into its data section (a mapping or a ring
// slot): what the forward pass reads. Built from the manifest's tensor table.
#pragma once

#include "model/matrix.h"
#include "format/manifest.h"

namespace rabbit {

struct LayerWeights {
    const float* attn_norm = nullptr; // [hidden]
    Matrix qkv;                       // [q_dim + 2 kv_dim, hidden]
    const float* qkv_bias = nullptr;  // [q_dim + 2 kv_dim], or null
    const float* q_norm = nullptr;    // [head_dim], or null (Qwen3)
    const float* k_norm = nullptr;    // [head_dim], or null
    Matrix o;                         // [hidden, q_dim]
    const float* o_bias = nullptr;    // [hidden], or null
    const float* ffn_norm = nullptr;  // [hidden]
    Matrix gate_up;                   // [2 intermediate, hidden]
    Matrix down;                      // [hidden, intermediate]
};

// data: the unit's data section (offset 0 = the manifest's tensor offsets).
LayerWeights layer_weights(const ManifestUnit& unit, const uint8_t* data);
// The one matrix of an embed or lm_head unit, and the vector of the norm unit.
Matrix unit_matrix(const ManifestUnit& unit, const uint8_t* data, const char* tensor);
const float* unit_vector(const ManifestUnit& unit, const uint8_t* data, const char* tensor);

} // namespace rabbit
