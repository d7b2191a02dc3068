// SPDX-License-Identifier: Apache-2.0
#include "split/quant_plan.h"

#include "common/error.h"

namespace rabbit {

namespace {

// The one quantized type of a single-type choice.
DType single_type(DTypeChoice c) {
    switch (c) {
    case DTypeChoice::q8_0: return DType::q8_0;
    case DTypeChoice::q4_0: return DType::q4_0;
    case DTypeChoice::q4_1: return DType::q4_1;
    case DTypeChoice::q5_0: return DType::q5_0;
    case DTypeChoice::q5_1: return DType::q5_1;
    case DTypeChoice::q4_k: return DType::q4_k;
    case DTypeChoice::q5_k: return DType::q5_k;
    case DTypeChoice::q6_k: return DType::q6_k;
    default: break;
    }
    RABBIT_CHECK(false, std::string("not a single quantized type: --dtype ") + dtype_choice_name(c));
    return DType::f32;
}

// The roles of a unit tensor's sources, in order: "qkv" has three, "o" one.
std::vector<MatrixRole> source_roles(const UnitSpec& unit, const TensorSpec& ts) {
    if (unit.kind == UnitKind::embed) return {MatrixRole::embed};
    if (unit.kind == UnitKind::lm_head) return {MatrixRole::output};
    // An expert's matrices ("expert.3.down", "shared.gate_up") have the roles of a dense MLP's.
    std::string n = ts.name;
    if (n == "router" || n == "shared_expert_gate") return {MatrixRole::router};
    if (n.rfind("expert.", 0) == 0 || n.rfind("shared.", 0) == 0) n = n.substr(n.rfind('.') + 1);
    if (n == "qkv") return {MatrixRole::q, MatrixRole::k, MatrixRole::v};
    if (n == "gate_up") return {MatrixRole::gate, MatrixRole::up};
    if (n == "q") return {MatrixRole::q};
    if (n == "k") return {MatrixRole::k};
    if (n == "v") return {MatrixRole::v};
    if (n == "o") return {MatrixRole::o};
    if (n == "gate") return {MatrixRole::gate};
    if (n == "up") return {MatrixRole::up};
    if (n == "down") return {MatrixRole::down};
    RABBIT_CHECK(false, "no quantization role for tensor " + unit.name + "/" + n);
    return {};
}

} // namespace

bool use_more_bits(uint32_t layer, uint32_t n_layers) {
    const uint32_t eighth = n_layers / 8;
    return layer < eighth || layer >= 7 * n_layers / 8 || (layer - eighth) % 3 == 2;
}

DType quant_target(DTypeChoice c, MatrixRole role, uint32_t layer, uint32_t n_layers, bool tied) {
    if (role == MatrixRole::router) return DType::f32;
    if (c != DTypeChoice::q4_k_m) return single_type(c);
    switch (role) {
    case MatrixRole::output: return DType::q6_k;
    case MatrixRole::embed: return tied ? DType::q6_k : DType::q4_k; // a tied embedding is the output projection
    case MatrixRole::v:
    case MatrixRole::down: return use_more_bits(layer, n_layers) ? DType::q6_k : DType::q4_k;
    default: return DType::q4_k;
    }
}

DType row_fallback(DType t, uint64_t cols) {
    if (cols % dtype_block(t) == 0) return t;
    DType f = t;
    if (t == DType::q4_k) f = DType::q5_0;
    else if (t == DType::q5_k) f = DType::q5_1;
    else if (t == DType::q6_k) f = DType::q8_0;
    return cols % dtype_block(f) == 0 ? f : DType::f16;
}

std::vector<TypedTensor> quant_unit_tensors(const UnitSpec& unit, DTypeChoice c, const ModelConfig& config,
                                            FallbackLog& fallbacks) {
    std::vector<TypedTensor> out;
    const bool tied = config.tie_word_embeddings;
    for (const auto& ts : unit.tensors) {
        if (ts.vector) { // norm weights and biases: tiny, and exact
            out.push_back({ts, DType::f32});
            continue;
        }
        const uint64_t cols = ts.shape[1];
        std::vector<DType> types;
        const std::vector<MatrixRole> roles = source_roles(unit, ts);
        const std::vector<std::string> parts = stacked_part_names(ts.name);
        for (size_t i = 0; i < roles.size(); ++i) {
            const DType want = quant_target(c, roles[i], unit.layer, config.num_layers, tied);
            const DType got = row_fallback(want, cols);
            if (got != want) fallbacks[{want, got, cols}].insert(parts.empty() ? ts.name : parts[i]);
            types.push_back(got);
        }
        bool same = true;
        for (DType t : types) same = same && t == types[0];
        if (same) {
            out.push_back({ts, types[0]});
            continue;
        }
        const std::vector<TensorSpec> apart = unstack(ts);
        RABBIT_CHECK(apart.size() == types.size(), "tensor " + ts.name + " has parts of different types but cannot be unstacked");
        for (size_t i = 0; i < apart.size(); ++i) out.push_back({apart[i], types[i]});
    }
    return out;
}

std::vector<std::string> fallback_lines(const FallbackLog& fallbacks) {
    std::vector<std::string> lines;
    for (const auto& [key, names] : fallbacks) {
        const auto& [want, got, cols] = key;
        std::string list;
        for (const auto& n : names) list += (list.empty() ? "" : ", ") + n;
        lines.push_back(std::string(dtype_name(want)) + " needs rows of whole " + std::to_string(dtype_block(want)) +
                        "-element blocks: " + list + " (rows of " + std::to_string(cols) + ") stored as " + dtype_name(got) +
                        " instead, as llama.cpp does");
    }
    return lines;
}

} // namespace rabbit
