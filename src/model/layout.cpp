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

std::string expert_tensor(uint32_t expert, const char* what) {
    return "expert." + std::to_string(expert) + "." + what;
}

namespace {

// A MoE layer's MLP after its ffn_norm: the router, the shared expert (Qwen2-MoE), then each
// expert's gate_up and down side by side, so that one expert is one contiguous byte range of
// the unit and the bytes before the first expert are all a token reads besides its experts.
// p: "model.layers.7.".
void add_moe_tensors(const ModelConfig& c, const std::string& p, std::vector<TensorSpec>& out) {
    const uint64_t hidden = c.hidden_size, inter = c.moe_intermediate_size, shared = c.shared_expert_intermediate_size;
    const bool mixtral = c.arch == Arch::mixtral;
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    out.push_back({"router", {c.num_experts, hidden}, false, {moe + "gate.weight"}, {c.num_experts}});
    if (shared) {
        const std::string s = moe + "shared_expert.";
        out.push_back({"shared_expert_gate", {1, hidden}, false, {moe + "shared_expert_gate.weight"}, {1}});
        out.push_back({"shared.gate_up", {2 * shared, hidden}, false, {s + "gate_proj.weight", s + "up_proj.weight"},
                       {shared, shared}});
        out.push_back({"shared.down", {hidden, shared}, false, {s + "down_proj.weight"}, {hidden}});
    }
    for (uint32_t e = 0; e < c.num_experts; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        // Mixtral's w1 is the gate, w3 the up projection, w2 the down projection.
        const std::string gate = x + (mixtral ? "w1.weight" : "gate_proj.weight");
        const std::string up = x + (mixtral ? "w3.weight" : "up_proj.weight");
        const std::string down = x + (mixtral ? "w2.weight" : "down_proj.weight");
        out.push_back({expert_tensor(e, "gate_up"), {2 * inter, hidden}, false, {gate, up}, {inter, inter}});
        out.push_back({expert_tensor(e, "down"), {hidden, inter}, false, {down}, {hidden}});
    }
}

} // namespace

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
        if (c.moe_layer(i)) {
            add_moe_tensors(c, p, u.tensors);
        } else {
            // gate rows then up rows: one product, SwiGLU reads the two halves.
            u.tensors.push_back({"gate_up", {2 * inter, hidden}, false, {p + "mlp.gate_proj.weight", p + "mlp.up_proj.weight"},
                                 {inter, inter}});
            u.tensors.push_back({"down", {hidden, inter}, false, {p + "mlp.down_proj.weight"}, {hidden}});
        }
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
    // "gate_up", and an expert's or the shared expert's: "expert.3.gate_up" -> expert.3.gate, expert.3.up.
    const std::string gate_up = "gate_up";
    if (tensor.size() >= gate_up.size() && tensor.compare(tensor.size() - gate_up.size(), gate_up.size(), gate_up) == 0) {
        const std::string prefix = tensor.substr(0, tensor.size() - gate_up.size());
        if (prefix.empty() || prefix.back() == '.') return {prefix + "gate", prefix + "up"};
    }
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
