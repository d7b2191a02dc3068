// SPDX-License-Identifier: Apache-2.0
#include "engine/weights.h"

#include "common/error.h"
#include "model/layout.h"

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
    t.gate_up = tensor_stack(u, "gate_up");
    t.down = matrix_tensor(u, "down");
    RABBIT_CHECK(t.attn_norm && t.ffn_norm, "layer unit without norms: " + u.layout.name);
    return t;
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
    w.down = tensor_matrix(*t.down, data);
    return w;
}

} // namespace rabbit
