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

// The one rule for what a decoded token reads whole: every layer, the final norm, lm_head, and
// the embedding only when tied (it is then the output projection too). An untied embedding is
// looked up a row per token, never read whole. The engines, the planner, `inspect` and `bench`
// all count by it.
bool streams_per_token(UnitKind kind, bool tied);

// Where each role sits in a model's unit list (streaming order).
struct UnitRoles {
    size_t embed = 0;
    std::vector<size_t> layers; // by layer index
    size_t norm = 0;
    size_t head = 0; // lm_head; the embedding when tied
    bool tied = false; // tie_word_embeddings: no lm_head unit, the embedding is the output projection
};
// kinds: the units' kinds in order; tied: the config's tie_word_embeddings.
UnitRoles unit_roles(const std::vector<UnitKind>& kinds, bool tied);

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

// The engine name of one of a MoE layer's experts' matrices: expert_tensor(3, "gate_up") is
// "expert.3.gate_up" (beside it "expert.3.down"); a MoE layer also holds "router"
// [num_experts, hidden] and, with a shared expert, "shared_expert_gate" [1, hidden],
// "shared.gate_up" and "shared.down". docs/FORMAT.md lists them.
std::string expert_tensor(uint32_t expert, const char* what);

// The units of a model in streaming order.
std::vector<UnitSpec> model_units(const ModelConfig& c);

// The names a stacked matrix's parts take when they are stored apart, one per source, in
// order: "qkv" -> q, k, v; "gate_up" -> gate, up. Empty for a tensor that is never stacked.
// A unit holds either the stacked tensor or all of its parts (when their dtypes differ, as
// in a Q4_K_M mix); engine/weights reads both forms.
std::vector<std::string> stacked_part_names(const std::string& tensor);
// ts as its parts, each a matrix of its one source's rows.
std::vector<TensorSpec> unstack(const TensorSpec& ts);

// Tensors a Hugging Face checkpoint may hold that no unit needs (precomputed RoPE tables).
bool is_ignored_hf_tensor(const std::string& name);

} // namespace rabbit
