// SPDX-License-Identifier: Apache-2.0
// Views of a unit's tensors, by role, pointing into its data section (a mapping, a ring slot, a
// resident buffer): what the forward pass of both engines reads. Built from the manifest's
// tensor table: a layer's tensors are found by name once (LayerTensors), and placed on any copy
// of its data section by adding their offsets (layer_weights).
#pragma once

#include "model/matrix.h"
#include "format/manifest.h"

#include <vector>

namespace rabbit {

struct LayerWeights {
    const float* attn_norm = nullptr; // [hidden]
    StackedMatrix qkv;                // [q_dim + 2 kv_dim, hidden]
    const float* qkv_bias = nullptr;  // [q_dim + 2 kv_dim], or null
    const float* q_norm = nullptr;    // [head_dim], or null (Qwen3)
    const float* k_norm = nullptr;    // [head_dim], or null
    Matrix o;                         // [hidden, q_dim]
    const float* o_bias = nullptr;    // [hidden], or null
    const float* ffn_norm = nullptr;  // [hidden]
    StackedMatrix gate_up;            // [2 intermediate, hidden]; a MoE layer: none (parts 0)
    Matrix down;                      // [hidden, intermediate]; a MoE layer: none (data null)
    // A MoE layer's (router.data null in a dense one); its experts: expert_weights.
    Matrix router;                    // [num_experts, hidden]
    Matrix shared_gate;               // [1, hidden], or data null: no shared expert
    StackedMatrix shared_gate_up;     // [2 shared_intermediate, hidden]
    Matrix shared_down;               // [hidden, shared_intermediate]
};

// One expert of a MoE layer.
struct ExpertWeights {
    StackedMatrix gate_up; // [2 moe_intermediate, hidden]
    Matrix down;           // [hidden, moe_intermediate]
};

// The tensors of a stacked matrix: "qkv", or "q", "k", "v" where their dtypes differ; "gate_up",
// or "gate", "up".
struct TensorStack {
    const UnitTensor* part[3] = {nullptr, nullptr, nullptr};
    size_t parts = 0;
};

// A layer unit's tensors by role, in the manifest's table (which outlives it): the optional
// vectors null where the unit has none. Checked once, when made: the matrices 2-D with one
// column count per stack, the vectors f32 and 1-D, both norms there.
struct LayerTensors {
    const UnitTensor* attn_norm = nullptr;
    TensorStack qkv;
    const UnitTensor* qkv_bias = nullptr;
    const UnitTensor* q_norm = nullptr;
    const UnitTensor* k_norm = nullptr;
    const UnitTensor* o = nullptr;
    const UnitTensor* o_bias = nullptr;
    const UnitTensor* ffn_norm = nullptr;
    TensorStack gate_up;              // a MoE layer: parts 0
    const UnitTensor* down = nullptr; // a MoE layer: null
    // A MoE layer (router non-null): its router, shared expert, and experts by index, each
    // one contiguous byte range [offset, offset + bytes) of the data section.
    const UnitTensor* router = nullptr;
    const UnitTensor* shared_gate = nullptr;
    TensorStack shared_gate_up;
    const UnitTensor* shared_down = nullptr;
    struct Expert {
        TensorStack gate_up;
        const UnitTensor* down = nullptr;
        uint64_t offset = 0, bytes = 0;
    };
    std::vector<Expert> experts;
    // Bytes of the data section before the first expert: what every token reads of a MoE
    // layer besides its experts (all of a dense layer: the data size).
    uint64_t dense_bytes = 0;
};
LayerTensors layer_tensors(const ManifestUnit& unit);
ExpertWeights expert_weights(const LayerTensors& tensors, size_t expert, const uint8_t* data);

// The weight bytes one decoded token reads (streams_per_token's units, the matrices a MoE
// layer runs), by the manifest: `inspect`, `bench` and the tests count by it.
struct TokenBytes {
    uint64_t dense = 0;          // every matrix but the experts': attention, dense MLPs, routers, lm_head
    uint64_t routed_experts = 0; // experts_per_tok experts of each MoE layer
    uint64_t all_experts = 0;    // every expert of every MoE layer
    uint64_t active() const { return dense + routed_experts; }
    uint64_t whole() const { return dense + all_experts; }
};
TokenBytes token_bytes(const Manifest& manifest);
// The same, unit by unit (a split plan's units, before any file exists).
void add_token_bytes(TokenBytes& bytes, const ModelConfig& c, UnitKind kind, const UnitLayout& layout);

// data: the unit's data section (offset 0 = the manifest's tensor offsets).
LayerWeights layer_weights(const LayerTensors& tensors, const uint8_t* data);
// The matrix `t` of a unit whose data section is at `data`; null data: its shape and type only
// (a matrix that streams in row blocks).
Matrix tensor_matrix(const UnitTensor& t, const uint8_t* data);
// The one matrix of an embed or lm_head unit, and the vector of the norm unit.
Matrix unit_matrix(const ManifestUnit& unit, const uint8_t* data, const char* tensor);
const float* unit_vector(const ManifestUnit& unit, const uint8_t* data, const char* tensor);

} // namespace rabbit
