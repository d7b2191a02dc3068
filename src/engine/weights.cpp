// SPDX-License-Identifier: Apache-2.0
#include "engine/weights.h"

#include "common/error.h"

namespace rabbit {

namespace {

const UnitTensor* find(const ManifestUnit& u, const char* name) { return u.layout.find(name); }

} // namespace

Matrix unit_matrix(const ManifestUnit& u, const uint8_t* data, const char* name) {
    const UnitTensor* t = find(u, name);
    RABBIT_CHECK(t && t->shape.size() == 2, std::string("unit ") + u.layout.name + " has no matrix " + name);
    return {data + t->offset, t->dtype, t->shape[0], t->shape[1]};
}

const float* unit_vector(const ManifestUnit& u, const uint8_t* data, const char* name) {
    const UnitTensor* t = find(u, name);
    if (!t) return nullptr;
    RABBIT_CHECK(t->dtype == DType::f32 && t->shape.size() == 1, std::string("unit ") + u.layout.name + " vector " + name);
    return reinterpret_cast<const float*>(data + t->offset);
}

LayerWeights layer_weights(const ManifestUnit& u, const uint8_t* data) {
    LayerWeights w;
    w.attn_norm = unit_vector(u, data, "attn_norm");
    w.qkv = unit_matrix(u, data, "qkv");
    w.qkv_bias = unit_vector(u, data, "qkv_bias");
    w.q_norm = unit_vector(u, data, "q_norm");
    w.k_norm = unit_vector(u, data, "k_norm");
    w.o = unit_matrix(u, data, "o");
    w.o_bias = unit_vector(u, data, "o_bias");
    w.ffn_norm = unit_vector(u, data, "ffn_norm");
    w.gate_up = unit_matrix(u, data, "gate_up");
    w.down = unit_matrix(u, data, "down");
    RABBIT_CHECK(w.attn_norm && w.ffn_norm, "layer unit without norms: " + u.layout.name);
    return w;
}

} // namespace rabbit
