// SPDX-License-Identifier: Apache-2.0
// ModelConfig: what a decoder-only model is, parsed once from a Hugging Face config.json (or
// from the normalized copy in a split's manifest) and validated. Architecture differences are
// flags here that the one forward pass honours, not separate code paths.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

class JsonWriter;

enum class Arch { qwen2, qwen3, llama, mistral, qwen2_moe, qwen3_moe, mixtral };

// rope_scaling (or rope_parameters) of config.json, read as transformers 5 reads it; the
// formulas are in src/engine/rope.cpp and docs/ARCHITECTURE.md.
struct RopeScaling {
    enum class Type { none, linear, llama3, yarn, dynamic, longrope };
    Type type = Type::none;
    double factor = 1.0;             // linear, llama3, yarn, dynamic; longrope: for its attention factor
    double low_freq_factor = 1.0;    // llama3
    double high_freq_factor = 4.0;   // llama3
    uint64_t original_max_position_embeddings = 0; // llama3, yarn, longrope
    double beta_fast = 32.0;         // yarn: rotations per original context above which a pair is kept
    double beta_slow = 1.0;          // yarn: ... below which it is interpolated by `factor`
    double mscale = 0.0;             // yarn: with mscale_all_dim, the attention factor's numerator (0: unset)
    double mscale_all_dim = 0.0;     // yarn: ... and denominator (0: unset)
    double attention_factor = 0.0;   // yarn, longrope: given in the config; 0 derives it
    bool truncate = true;            // yarn: round the correction range outwards to whole pairs
    std::vector<double> short_factor, long_factor; // longrope: [head_dim / 2] divisors of the frequencies

    bool operator==(const RopeScaling& o) const;
};

struct ModelConfig {
    std::string architecture; // as config.json names it: "Qwen2ForCausalLM"
    Arch arch = Arch::llama;

    uint32_t hidden_size = 0;
    uint32_t intermediate_size = 0;
    uint32_t num_layers = 0;
    uint32_t num_heads = 0;
    uint32_t num_kv_heads = 0;
    uint32_t head_dim = 0; // may differ from hidden_size / num_heads (Qwen3, Mistral Nemo)
    uint32_t vocab_size = 0;
    uint64_t max_position_embeddings = 0;

    double rms_norm_eps = 1e-6;
    double rope_theta = 10000.0;
    RopeScaling rope_scaling;

    bool tie_word_embeddings = false; // lm_head reuses the embedding matrix
    bool qkv_bias = false;            // q, k and v projections carry a bias (Qwen2: always)
    bool o_bias = false;              // the output projection carries a bias
    bool qk_norm = false;             // per-head RMSNorm of q and k before RoPE (Qwen3)
    uint32_t sliding_window = 0;      // 0: full attention; else each token sees this many (Mistral v0.1)

    // Mixture of experts (Qwen2-MoE, Qwen3-MoE, Mixtral); num_experts 0: a dense model. A MoE
    // layer's MLP is a router [num_experts, hidden] choosing experts_per_tok experts per token
    // (softmax over all, top-k, the k weights renormalised to sum 1 where norm_topk_prob),
    // each expert a SwiGLU MLP of moe_intermediate_size, beside which Qwen2-MoE runs a shared
    // expert of shared_expert_intermediate_size gated by sigmoid(shared_gate . x). Layer i is
    // a MoE layer unless it is in mlp_only_layers or (i + 1) is not a multiple of
    // decoder_sparse_step; the others are dense MLPs of intermediate_size.
    uint32_t num_experts = 0;
    uint32_t experts_per_tok = 0;
    uint32_t moe_intermediate_size = 0;
    uint32_t shared_expert_intermediate_size = 0; // 0: no shared expert
    bool norm_topk_prob = false;
    uint32_t decoder_sparse_step = 1;
    std::vector<uint32_t> mlp_only_layers;

    std::optional<int64_t> bos_token_id;
    std::vector<int64_t> eos_token_ids; // generation stops at any of them

    uint64_t q_dim() const { return uint64_t(num_heads) * head_dim; }
    uint64_t kv_dim() const { return uint64_t(num_kv_heads) * head_dim; }
    bool is_moe() const { return num_experts > 0; }
    bool moe_layer(uint32_t layer) const;
    // The widest MLP hidden of any layer: the dense one, an expert, the shared expert.
    uint32_t max_intermediate() const;
    // The most positions a context may hold: max_position_embeddings, or where that is more,
    // the original context times the factor with YaRN (Qwen's model cards add rope_scaling to
    // a config whose max_position_embeddings stays at the original 32768), and
    // max_position_embeddings times the factor with dynamic NTK (what it scales for).
    uint64_t max_context() const;

    // From a Hugging Face directory's config.json text (and generation_config.json, which
    // holds the complete list of stop tokens, when present). Throws bad_input for malformed
    // files and unsupported for architectures and features rabbit does not run.
    static ModelConfig from_hf(const std::string& config_json, const std::string& config_file,
                               const std::optional<std::string>& generation_config_json = std::nullopt,
                               const std::string& generation_config_file = "generation_config.json");

    // From the "config" object that to_json wrote (a split's manifest.json), given as JSON text.
    static ModelConfig from_normalized(const std::string& json, const std::string& file);
    void to_json(JsonWriter& w) const;

    // Throws bad_input(file, ...) naming the first inconsistent field.
    void validate(const std::string& file) const;

    bool operator==(const ModelConfig& o) const;
};

const char* arch_name(Arch a);
// The architectures rabbit runs, for messages: "Qwen2ForCausalLM, Qwen3ForCausalLM, ..."
std::string supported_architectures();

} // namespace rabbit
