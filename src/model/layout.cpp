// SPDX-License-Identifier: Apache-2.0
#include "model/layout.h"

#include <algorithm>

namespace rabbit {

const char* unit_kind_name(UnitKind k) {
    switch (k) {
    case UnitKind::embed: return "embed";
    case UnitKind::layer: return "layer";
    case UnitKind::final_norm: return "norm";
    case UnitKind::lm_head: return "lm_head";
    }
    return "?";
}

bool streams_per_token(UnitKind kind, bool tied) { return kind != UnitKind::embed || tied; }

UnitRoles unit_roles(const std::vector<UnitKind>& kinds, bool tied) {
    UnitRoles r;
    r.tied = tied;
    for (size_t i = 0; i < kinds.size(); ++i) {
        switch (kinds[i]) {
        case UnitKind::embed: r.embed = i; break;
        case UnitKind::layer: r.layers.push_back(i); break;
        case UnitKind::final_norm: r.norm = i; break;
        case UnitKind::lm_head: r.head = i; break;
        }
    }
    if (tied) r.head = r.embed;
    return r;
}

bool is_ignored_hf_tensor(const std::string& name) {
    const std::string suffix = "rotary_emb.inv_freq";
    return name.size() >= suffix.size() && name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0;
}

std::vector<UnitSpec> model_units(const ModelConfig& c) {
    const uint64_t hidden = c.hidden_size, inter = c.intermediate_size, vocab = c.vocab_size;
    const uint64_t qkv_rows = c.q_dim() + 2 * c.kv_dim();
    std::vector<UnitSpec> units;

    units.push_back({"embed", UnitKind::embed, 0, "embed.rbt", {{"embed", {vocab, hidden}, false, {"model.embed_tokens.weight"}, {vocab}}}});

    int width = 3;
    for (uint32_t n = c.num_layers - 1; n >= 1000; n /= 10) ++width;
    for (uint32_t i = 0; i < c.num_layers; ++i) {
        const std::string p = "model.layers." + std::to_string(i) + ".";
        std::string index = std::to_string(i);
        std::string file = "layer." + std::string(size_t(width) - std::min<size_t>(index.size(), size_t(width)), '0') + index + ".rbt";
        UnitSpec u{"layer." + std::to_string(i), UnitKind::layer, i, file, {}};
        // Compute order, so that a unit streamed in chunks can start before it has fully arrived.
        const std::vector<uint64_t> qkv_parts = {c.q_dim(), c.kv_dim(), c.kv_dim()};
        u.tensors.push_back({"attn_norm", {hidden}, true, {p + "input_layernorm.weight"}, {hidden}});
        // q, k and v rows stacked: one matrix product instead of three.
        u.tensors.push_back({"qkv", {qkv_rows, hidden}, false,
                             {p + "self_attn.q_proj.weight", p + "self_attn.k_proj.weight", p + "self_attn.v_proj.weight"},
                             qkv_parts});
        if (c.qkv_bias)
            u.tensors.push_back({"qkv_bias", {qkv_rows}, true,
                                 {p + "self_attn.q_proj.bias", p + "self_attn.k_proj.bias", p + "self_attn.v_proj.bias"},
                                 qkv_parts});
        if (c.qk_norm) {
            u.tensors.push_back({"q_norm", {c.head_dim}, true, {p + "self_attn.q_norm.weight"}, {c.head_dim}});
            u.tensors.push_back({"k_norm", {c.head_dim}, true, {p + "self_attn.k_norm.weight"}, {c.head_dim}});
        }
        u.tensors.push_back({"o", {hidden, c.q_dim()}, false, {p + "self_attn.o_proj.weight"}, {hidden}});
        if (c.o_bias) u.tensors.push_back({"o_bias", {hidden}, true, {p + "self_attn.o_proj.bias"}, {hidden}});
        u.tensors.push_back({"ffn_norm", {hidden}, true, {p + "post_attention_layernorm.weight"}, {hidden}});
        // gate rows then up rows: one product, SwiGLU reads the two halves.
        u.tensors.push_back({"gate_up", {2 * inter, hidden}, false, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"},
                             {inter, inter}});
        u.tensors.push_back({"down", {hidden, inter}, false, {p + "mlp.down_proj.weight"}, {hidden}});
        units.push_back(std::move(u));
    }

    units.push_back({"norm", UnitKind::final_norm, 0, "norm.rbt", {{"norm", {hidden}, true, {"model.norm.weight"}, {hidden}}}});
    if (!c.tie_word_embeddings)
        units.push_back(
            {"lm_head", UnitKind::lm_head, 0, "lm_head.rbt", {{"lm_head", {vocab, hidden}, false, {"lm_head.weight"}, {vocab}}}});
    return units;
}

std::vector<std::string> stacked_part_names(const std::string& tensor) {
    if (tensor == "qkv") return {"q", "k", "v"};
    if (tensor == "gate_up") return {"gate", "up"};
    return {};
}

std::vector<TensorSpec> unstack(const TensorSpec& ts) {
    const std::vector<std::string> names = stacked_part_names(ts.name);
    std::vector<TensorSpec> parts;
    for (size_t i = 0; i < names.size() && i < ts.sources.size(); ++i) {
        std::vector<uint64_t> shape = ts.shape;
        shape[0] = ts.source_rows[i];
        parts.push_back({names[i], shape, ts.vector, {ts.sources[i]}, {ts.source_rows[i]}});
    }
    return parts;
}

} // namespace rabbit
