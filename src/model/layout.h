// SPDX-License-Identifier: Apache-2.0
// How a model is cut into units, the pieces that stream: the embedding, each decoder layer,
// the final norm and (when not tied) lm_head. For each unit, the tensors the engine reads,
// their shapes, and the Hugging Face tensors they are made of. docs/FORMAT.md documents it.
#pragma once

#include "model/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

enum class UnitKind { embed, layer, final_norm, lm_head };

const char* unit_kind_name(UnitKind k); // "embed", "layer", "norm", "lm_head"

struct TensorSpec {
    std::string name;                 // engine name inside the unit: "qkv"
    std::vector<uint64_t> shape;      // row-major, as the engine reads it
    bool vector = false;              // 1-D (norm weights, biases): always stored f32
    std::vector<std::string> sources; // Hugging Face tensors concatenated along dim 0, in order
    std::vector<uint64_t> source_rows; // dim 0 of each source; the rest of the shape is shared
};

struct UnitSpec {
    std::string name; // "embed", "layer.7", "norm", "lm_head"
    UnitKind kind = UnitKind::layer;
    uint32_t layer = 0; // for kind == layer
    std::string file;   // "layer.007.rbt"
    std::vector<TensorSpec> tensors;
};

// The units of a model in streaming order.
std::vector<UnitSpec> model_units(const ModelConfig& c);

// Tensors a Hugging Face checkpoint may hold that no unit needs (precomputed RoPE tables).
bool is_ignored_hf_tensor(const std::string& name);

} // namespace rabbit
