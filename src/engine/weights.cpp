// SPDX-License-Identifier: Apache-2.0
#include "engine/weights.h"

#include "common/error.h"
#include "model/layout.h"

#include <algorithm>

namespace rabbit {

namespace {

const UnitTensor* matrix_tensor(const ManifestUnit& u, const char* name) {
    const UnitTensor* t = u.layout.find(name);
    RABBIT_CHECK(t && t->shape.size() == 2, std::string("unit ") + u.layout.name + " has no matrix " + name);
    return t;
}

// Null when the unit has no such vector.
const UnitTensor* vector_tensor(const ManifestUnit& u, const char* name) {
    const UnitTensor* t = u.layout.find(name);
    if (!t) return nullptr;
    RABBIT_CHECK(t->dtype == DType::f32 && t->shape.size() == 1, std::string("unit ") + u.layout.name + " vector " + name);
    return t;
}

// `stacked` ("qkv"), else its parts by name ("q", "k", "v"), all matrices of one width.
TensorStack tensor_stack(const ManifestUnit& u, const char* stacked) {
    TensorStack s;
    if (u.layout.find(stacked)) {
        s.part[s.parts++] = matrix_tensor(u, stacked);
        return s;
    }
    for (const std::string& p : stacked_part_names(stacked)) s.part[s.parts++] = matrix_tensor(u, p.c_str());
    for (size_t i = 1; i < s.parts; ++i)
        RABBIT_CHECK(s.part[i]->shape[1] == s.part[0]->shape[1],
                     std::string("unit ") + u.layout.name + ": the parts of " + stacked + " differ in width");
    return s;
}

StackedMatrix stacked_matrix(const TensorStack& s, const uint8_t* data) {
    StackedMatrix m;
    m.parts = s.parts;
    for (size_t i = 0; i < s.parts; ++i) m.part[i] = tensor_matrix(*s.part[i], data);
    return m;
}

const float* place(const UnitTensor* t, const uint8_t* data) {
    return t ? reinterpret_cast<const float*>(data + t->offset) : nullptr;
}

} // namespace

Matrix tensor_matrix(const UnitTensor& t, const uint8_t* data) {
    return {data ? data + t.offset : nullptr, t.dtype, t.shape[0], t.shape[1]};
}

Matrix unit_matrix(const ManifestUnit& u, const uint8_t* data, const char* name) {
    return tensor_matrix(*matrix_tensor(u, name), data);
}

const float* unit_vector(const ManifestUnit& u, const uint8_t* data, const char* name) {
    return place(vector_tensor(u, name), data);
}

namespace {

// A MoE layer's router, shared expert and experts; an expert's byte range runs from its
// first tensor to the end of its last (the layout keeps them side by side).
void moe_tensors(const ManifestUnit& u, LayerTensors& t) {
    t.router = matrix_tensor(u, "router");
    t.shared_gate = u.layout.find("shared_expert_gate") ? matrix_tensor(u, "shared_expert_gate") : nullptr;
    if (t.shared_gate) {
        t.shared_gate_up = tensor_stack(u, "shared.gate_up");
        t.shared_down = matrix_tensor(u, "shared.down");
    }
    const uint64_t n = t.router->shape[0];
    for (uint32_t e = 0; e < n; ++e) {
        LayerTensors::Expert x;
        x.gate_up = tensor_stack(u, expert_tensor(e, "gate_up").c_str());
        x.down = matrix_tensor(u, expert_tensor(e, "down").c_str());
        uint64_t begin = x.down->offset, end = x.down->offset + x.down->nbytes;
        for (size_t i = 0; i < x.gate_up.parts; ++i) {
            begin = std::min(begin, x.gate_up.part[i]->offset);
            end = std::max(end, x.gate_up.part[i]->offset + x.gate_up.part[i]->nbytes);
        }
        x.offset = begin, x.bytes = end - begin;
        t.dense_bytes = std::min(t.dense_bytes, begin);
        t.experts.push_back(x);
    }
}

} // namespace

LayerTensors layer_tensors(const ManifestUnit& u) {
    LayerTensors t;
    t.attn_norm = vector_tensor(u, "attn_norm");
    t.qkv = tensor_stack(u, "qkv");
    t.qkv_bias = vector_tensor(u, "qkv_bias");
    t.q_norm = vector_tensor(u, "q_norm");
    t.k_norm = vector_tensor(u, "k_norm");
    t.o = matrix_tensor(u, "o");
    t.o_bias = vector_tensor(u, "o_bias");
    t.ffn_norm = vector_tensor(u, "ffn_norm");
    t.dense_bytes = u.layout.data_size;
    if (u.layout.find("router")) {
        moe_tensors(u, t);
    } else {
        t.gate_up = tensor_stack(u, "gate_up");
        t.down = matrix_tensor(u, "down");
    }
    RABBIT_CHECK(t.attn_norm && t.ffn_norm, "layer unit without norms: " + u.layout.name);
    return t;
}

ExpertWeights expert_weights(const LayerTensors& t, size_t e, const uint8_t* data) {
    RABBIT_CHECK(e < t.experts.size(), "expert index out of range");
    return {stacked_matrix(t.experts[e].gate_up, data), tensor_matrix(*t.experts[e].down, data)};
}

void add_token_bytes(TokenBytes& b, const ModelConfig& c, UnitKind kind, const UnitLayout& layout) {
    if (!streams_per_token(kind, c.tie_word_embeddings)) return;
    uint64_t experts = 0, routed = 0, matrices = 0;
    // The experts' matrices, not their byte ranges: a range also holds the padding to the
    // unit's alignment after each matrix (Q8_0 rows of 34 bytes), which no token reads.
    for (const UnitTensor& x : layout.tensors)
        if (x.shape.size() == 2) {
            matrices += x.nbytes;
            if (x.name.rfind("expert.", 0) == 0) experts += x.nbytes;
        }
    if (kind == UnitKind::layer && layout.find("router")) {
        ManifestUnit u;
        u.layout = layout;
        const size_t n = layer_tensors(u).experts.size();
        // Every expert of a layer has one shape and type: k of them are read.
        routed = n == 0 ? 0 : experts / n * c.experts_per_tok;
    }
    b.dense += matrices - experts;
    b.routed_experts += routed;
    b.all_experts += experts;
}

TokenBytes token_bytes(const Manifest& m) {
    TokenBytes b;
    for (const ManifestUnit& u : m.units) add_token_bytes(b, m.config, u.kind, u.layout);
    return b;
}

LayerWeights layer_weights(const LayerTensors& t, const uint8_t* data) {
    LayerWeights w;
    w.attn_norm = place(t.attn_norm, data);
    w.qkv = stacked_matrix(t.qkv, data);
    w.qkv_bias = place(t.qkv_bias, data);
    w.q_norm = place(t.q_norm, data);
    w.k_norm = place(t.k_norm, data);
    w.o = tensor_matrix(*t.o, data);
    w.o_bias = place(t.o_bias, data);
    w.ffn_norm = place(t.ffn_norm, data);
    w.gate_up = stacked_matrix(t.gate_up, data);
    if (t.down) w.down = tensor_matrix(*t.down, data);
    if (t.router) w.router = tensor_matrix(*t.router, data);
    if (t.shared_gate) {
        w.shared_gate = tensor_matrix(*t.shared_gate, data);
        w.shared_gate_up = stacked_matrix(t.shared_gate_up, data);
        w.shared_down = tensor_matrix(*t.shared_down, data);
    }
    return w;
}

} // namespace rabbit
