// SPDX-License-Identifier: Apache-2.0
#include "model/config.h"

#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "model/rope_scaling.h"

#include <algorithm>
#include <cmath>

namespace rabbit {

namespace {

using simdjson::dom::element;
using simdjson::dom::object;

struct ArchInfo {
    Arch arch;
    const char* architecture;
    const char* model_type;
    // Defaults of the transformers config class (5.x), for keys a config.json leaves out.
    // An explicit null differs: num_key_value_heads null means num_attention_heads, and
    // sliding_window null means full attention.
    uint64_t default_max_position;
    uint32_t default_head_dim;       // 0: hidden_size / num_attention_heads
    uint32_t default_kv_heads;       // 0: num_attention_heads
    uint32_t default_sliding_window; // when the key is absent (Mistral only)
    int64_t default_bos, default_eos; // -1: none
};

constexpr ArchInfo k_archs[] = {
    {Arch::qwen2, "Qwen2ForCausalLM", "qwen2", 32768, 0, 32, 0, -1, -1},
    {Arch::qwen3, "Qwen3ForCausalLM", "qwen3", 32768, 128, 32, 0, -1, -1},
    {Arch::llama, "LlamaForCausalLM", "llama", 2048, 0, 0, 0, 1, 2},
    {Arch::mistral, "MistralForCausalLM", "mistral", 131072, 0, 8, 4096, 1, 2},
    {Arch::qwen2_moe, "Qwen2MoeForCausalLM", "qwen2_moe", 32768, 0, 16, 0, -1, -1},
    {Arch::qwen3_moe, "Qwen3MoeForCausalLM", "qwen3_moe", 32768, 0, 4, 0, -1, -1},
    {Arch::mixtral, "MixtralForCausalLM", "mixtral", 131072, 0, 8, 0, 1, 2},
};

const ArchInfo* find_arch_by_name(const std::string& name) {
    for (const auto& a : k_archs)
        if (name == a.architecture) return &a;
    return nullptr;
}

const ArchInfo* find_arch_by_model_type(const std::string& type) {
    for (const auto& a : k_archs)
        if (type == a.model_type) return &a;
    return nullptr;
}

const ArchInfo& arch_info(Arch arch) {
    for (const auto& a : k_archs)
        if (a.arch == arch) return a;
    RABBIT_CHECK(false, "unknown Arch");
    __builtin_unreachable();
}

uint32_t required_u32(object o, const char* key, const std::string& file) {
    auto e = json_value(o, key);
    if (!e) throw bad_input(file, std::string("'") + key + "' is missing");
    uint64_t v = json_to_uint(*e, file, std::string("'") + key + "'");
    if (v > UINT32_MAX) throw bad_input(file, std::string("'") + key + "' is " + std::to_string(v) + ", too large");
    return uint32_t(v);
}

uint32_t optional_u32(object o, const char* key, const std::string& file, uint32_t fallback) {
    return json_value(o, key) ? required_u32(o, key, file) : fallback;
}

double optional_double(object o, const char* key, const std::string& file, double fallback) {
    auto e = json_value(o, key);
    return e ? json_to_double(*e, file, std::string("'") + key + "'") : fallback;
}

bool optional_bool(object o, const char* key, const std::string& file, bool fallback) {
    auto e = json_value(o, key);
    return e ? json_to_bool(*e, file, std::string("'") + key + "'") : fallback;
}

std::vector<int64_t> parse_token_ids(element e, const std::string& file, const std::string& what) {
    std::vector<int64_t> ids;
    if (e.is_array()) {
        for (auto x : json_to_array(e, file, what)) ids.push_back(json_to_int(x, file, what + " entry"));
    } else {
        ids.push_back(json_to_int(e, file, what));
    }
    return ids;
}

} // namespace

bool RopeScaling::operator==(const RopeScaling& o) const {
    return type == o.type && factor == o.factor && low_freq_factor == o.low_freq_factor &&
           high_freq_factor == o.high_freq_factor &&
           original_max_position_embeddings == o.original_max_position_embeddings && beta_fast == o.beta_fast &&
           beta_slow == o.beta_slow && mscale == o.mscale && mscale_all_dim == o.mscale_all_dim &&
           attention_factor == o.attention_factor && truncate == o.truncate && short_factor == o.short_factor &&
           long_factor == o.long_factor;
}

uint64_t ModelConfig::max_context() const {
    const RopeScaling& s = rope_scaling;
    double scaled = 0;
    if (s.type == RopeScaling::Type::yarn) scaled = std::floor(s.factor * double(s.original_max_position_embeddings));
    else if (s.type == RopeScaling::Type::dynamic) scaled = std::floor(s.factor * double(max_position_embeddings));
    return std::max<uint64_t>(max_position_embeddings, scaled < 0x1p32 ? uint64_t(scaled) : uint64_t(1) << 32);
}

bool ModelConfig::moe_layer(uint32_t layer) const {
    if (num_experts == 0 || decoder_sparse_step == 0 || (layer + 1) % decoder_sparse_step != 0) return false;
    return std::find(mlp_only_layers.begin(), mlp_only_layers.end(), layer) == mlp_only_layers.end();
}

uint32_t ModelConfig::max_intermediate() const {
    return std::max({intermediate_size, moe_intermediate_size, shared_expert_intermediate_size});
}

const char* arch_name(Arch a) { return arch_info(a).architecture; }

std::string supported_architectures() {
    std::string s;
    for (const auto& a : k_archs) {
        if (!s.empty()) s += ", ";
        s += a.architecture;
    }
    return s;
}

namespace {

// Which architecture: "architectures" names the model class; "model_type" the config class.
const ArchInfo& read_arch(object root, const std::string& file) {
    const ArchInfo* info = nullptr;
    if (auto a = json_value(root, "architectures")) {
        auto arr = json_to_array(*a, file, "'architectures'");
        if (arr.size() == 0) throw bad_input(file, "'architectures' is empty");
        std::string name = json_to_string(arr.at(0).value(), file, "'architectures' entry");
        info = find_arch_by_name(name);
        if (!info)
            throw unsupported(file, "architecture '" + name + "' is not supported; rabbit runs " + supported_architectures());
    } else if (auto t = json_value(root, "model_type")) {
        std::string type = json_to_string(*t, file, "'model_type'");
        info = find_arch_by_model_type(type);
        if (!info)
            throw unsupported(file, "model_type '" + type + "' is not supported; rabbit runs " + supported_architectures());
    } else {
        throw bad_input(file, "names no architecture (neither 'architectures' nor 'model_type')");
    }
    return *info;
}

// Variants of the architecture that the one code path does not run.
void refuse_unsupported_variants(object root, Arch arch, const std::string& file) {
    if (auto q = json_value(root, "quantization_config")) {
        std::string method = "unknown";
        if (q->is_object())
            if (auto m = json_value(json_to_object(*q, file, "quantization_config"), "quant_method"); m && m->is_string())
                method = json_to_string(*m, file, "quant_method");
        throw unsupported(file, "quantized checkpoints (quant_method " + method +
                                    ") are not supported; use the original f32/f16/bf16 weights");
    }
    if (auto act = json_value(root, "hidden_act")) {
        std::string a = json_to_string(*act, file, "'hidden_act'");
        if (a != "silu") throw unsupported(file, "hidden_act '" + a + "' is not supported (rabbit runs SwiGLU with silu)");
    }
    if (auto p = json_value(root, "partial_rotary_factor"); p && json_to_double(*p, file, "'partial_rotary_factor'") != 1.0)
        throw unsupported(file, "partial rotary embeddings (partial_rotary_factor != 1) are not supported");
    if (arch == Arch::llama && optional_bool(root, "mlp_bias", file, false))
        throw unsupported(file, "mlp_bias: true is not supported");
    if (arch == Arch::llama && optional_u32(root, "pretraining_tp", file, 1) != 1)
        throw unsupported(file, "pretraining_tp other than 1 is not supported");
}

// Sizes, positions, norm epsilon, tied embeddings.
void read_shapes(object root, const ArchInfo& info, const std::string& file, ModelConfig& c) {
    c.hidden_size = required_u32(root, "hidden_size", file);
    c.intermediate_size = required_u32(root, "intermediate_size", file);
    c.num_layers = required_u32(root, "num_hidden_layers", file);
    c.num_heads = required_u32(root, "num_attention_heads", file);
    if (json_field(root, "num_key_value_heads")) // present; null means "as many as the heads"
        c.num_kv_heads = optional_u32(root, "num_key_value_heads", file, c.num_heads);
    else
        c.num_kv_heads = info.default_kv_heads ? info.default_kv_heads : c.num_heads;
    c.vocab_size = required_u32(root, "vocab_size", file);
    if (c.num_heads == 0) throw bad_input(file, "'num_attention_heads' must be positive");
    uint32_t default_head_dim = info.default_head_dim;
    if (default_head_dim == 0) {
        if (c.hidden_size % c.num_heads != 0 && !json_value(root, "head_dim"))
            throw bad_input(file, "hidden_size " + std::to_string(c.hidden_size) + " is not a multiple of num_attention_heads " +
                                      std::to_string(c.num_heads) + " and no head_dim is given");
        default_head_dim = c.hidden_size / c.num_heads;
    }
    c.head_dim = optional_u32(root, "head_dim", file, default_head_dim);
    c.max_position_embeddings = json_value(root, "max_position_embeddings")
                                    ? json_to_uint(*json_value(root, "max_position_embeddings"), file, "'max_position_embeddings'")
                                    : info.default_max_position;
    c.rms_norm_eps = optional_double(root, "rms_norm_eps", file, 1e-6);
    c.tie_word_embeddings = optional_bool(root, "tie_word_embeddings", file, false);
}

// RoPE: transformers 4 writes rope_theta + rope_scaling, transformers 5 rope_parameters. As
// transformers 5 reads them: a rope_scaling object wins over rope_parameters, and a
// rope_theta inside it over the top-level one (default 10000).
void read_rope(object root, const std::string& file, ModelConfig& c) {
    c.rope_theta = optional_double(root, "rope_theta", file, 10000.0);
    const char* rope_key = json_value(root, "rope_scaling") ? "rope_scaling" : "rope_parameters";
    if (auto rp = json_value(root, rope_key)) {
        object o = json_to_object(*rp, file, std::string("'") + rope_key + "'");
        if (!json_value(o, "rope_type") && !json_value(o, "type"))
            throw unsupported(file, std::string("'") + rope_key + "' per layer type (no rope_type) is not supported");
        c.rope_scaling = parse_rope_scaling(o, file, rope_key);
        c.rope_theta = optional_double(o, "rope_theta", file, c.rope_theta);
    }
}

// The architecture's attention flags: biases, q/k norm, sliding window.
void read_attention_flags(object root, const ArchInfo& info, const std::string& file, ModelConfig& c) {
    switch (c.arch) {
    case Arch::qwen2:
        c.qkv_bias = true; // Qwen2's q/k/v projections always have a bias, o_proj never
        break;
    case Arch::qwen2_moe:
        c.qkv_bias = optional_bool(root, "qkv_bias", file, true); // o_proj never has one
        break;
    case Arch::qwen3:
    case Arch::qwen3_moe:
        c.qk_norm = true;
        c.qkv_bias = c.o_bias = optional_bool(root, "attention_bias", file, false);
        break;
    case Arch::llama:
        c.qkv_bias = c.o_bias = optional_bool(root, "attention_bias", file, false);
        break;
    case Arch::mistral:
    case Arch::mixtral:
        break;
    }
    if (c.arch == Arch::qwen2 || c.arch == Arch::qwen3 || c.arch == Arch::qwen2_moe || c.arch == Arch::qwen3_moe) {
        if (optional_bool(root, "use_sliding_window", file, false))
            throw unsupported(file, "sliding-window attention (use_sliding_window: true) is not supported for " + c.architecture);
    } else if (c.arch == Arch::mistral || c.arch == Arch::mixtral) {
        c.sliding_window = json_field(root, "sliding_window") ? optional_u32(root, "sliding_window", file, 0)
                                                              : info.default_sliding_window;
    }
}

// The experts: Qwen's MoE keys (with transformers' defaults), or Mixtral's, whose every layer
// is a MoE layer of intermediate_size experts that always renormalises its top k.
void read_moe(object root, const std::string& file, ModelConfig& c) {
    if (c.arch == Arch::mixtral) {
        c.num_experts = optional_u32(root, "num_local_experts", file, 8);
        c.experts_per_tok = optional_u32(root, "num_experts_per_tok", file, 2);
        c.moe_intermediate_size = c.intermediate_size;
        c.norm_topk_prob = true;
        return;
    }
    if (c.arch != Arch::qwen2_moe && c.arch != Arch::qwen3_moe) return;
    const bool qwen2 = c.arch == Arch::qwen2_moe;
    // Qwen's model cards say num_experts; transformers 5 writes Qwen3-MoE's as num_local_experts.
    c.num_experts = optional_u32(root, "num_experts", file, optional_u32(root, "num_local_experts", file, qwen2 ? 60 : 128));
    c.experts_per_tok = optional_u32(root, "num_experts_per_tok", file, qwen2 ? 4 : 8);
    c.moe_intermediate_size = optional_u32(root, "moe_intermediate_size", file, qwen2 ? 1408 : 768);
    if (qwen2) c.shared_expert_intermediate_size = optional_u32(root, "shared_expert_intermediate_size", file, 5632);
    c.norm_topk_prob = optional_bool(root, "norm_topk_prob", file, false);
    c.decoder_sparse_step = optional_u32(root, "decoder_sparse_step", file, 1);
    if (auto m = json_value(root, "mlp_only_layers"))
        for (auto v : json_to_array(*m, file, "'mlp_only_layers'")) {
            const uint64_t i = json_to_uint(v, file, "'mlp_only_layers' entry");
            if (i > UINT32_MAX) throw bad_input(file, "'mlp_only_layers' entry " + std::to_string(i) + " is too large");
            c.mlp_only_layers.push_back(uint32_t(i));
        }
}

// Special tokens: generation_config.json, when present, is what generate() uses.
void read_special_tokens(object root, const ArchInfo& info, const std::string& file,
                         const std::optional<std::string>& generation_json, const std::string& generation_file,
                         ModelConfig& c) {
    if (!json_field(root, "bos_token_id") && info.default_bos >= 0) c.bos_token_id = info.default_bos;
    if (!json_field(root, "eos_token_id") && info.default_eos >= 0) c.eos_token_ids = {info.default_eos};
    if (auto b = json_value(root, "bos_token_id")) c.bos_token_id = json_to_int(*b, file, "'bos_token_id'");
    if (auto e = json_value(root, "eos_token_id")) c.eos_token_ids = parse_token_ids(*e, file, "'eos_token_id'");
    if (generation_json) {
        JsonDocument gen(*generation_json, generation_file);
        object g = gen.root_object();
        if (auto b = json_value(g, "bos_token_id")) c.bos_token_id = json_to_int(*b, generation_file, "'bos_token_id'");
        if (auto e = json_value(g, "eos_token_id")) c.eos_token_ids = parse_token_ids(*e, generation_file, "'eos_token_id'");
    }
}

} // namespace

ModelConfig ModelConfig::from_hf(const std::string& config_json, const std::string& file,
                                 const std::optional<std::string>& generation_json,
                                 const std::string& generation_file) {
    JsonDocument doc(config_json, file);
    object root = doc.root_object();
    ModelConfig c;
    const ArchInfo& info = read_arch(root, file);
    c.arch = info.arch;
    c.architecture = info.architecture;
    refuse_unsupported_variants(root, c.arch, file);
    read_shapes(root, info, file, c);
    read_rope(root, file, c);
    read_attention_flags(root, info, file, c);
    read_moe(root, file, c);
    read_special_tokens(root, info, file, generation_json, generation_file, c);
    c.validate(file);
    return c;
}

void ModelConfig::validate(const std::string& file) const {
    auto range = [&](const char* name, uint64_t v, uint64_t lo, uint64_t hi) {
        if (v < lo || v > hi)
            throw bad_input(file, std::string(name) + " is " + std::to_string(v) + ", expected " + std::to_string(lo) +
                                      ".." + std::to_string(hi));
    };
    range("hidden_size", hidden_size, 1, 1u << 17);
    range("intermediate_size", intermediate_size, 1, 1u << 20);
    range("num_hidden_layers", num_layers, 1, 4096);
    range("num_attention_heads", num_heads, 1, 4096);
    range("num_key_value_heads", num_kv_heads, 1, num_heads);
    range("head_dim", head_dim, 2, 1024);
    range("vocab_size", vocab_size, 1, 1u << 24);
    range("max_position_embeddings", max_position_embeddings, 1, uint64_t(1) << 32);
    if (num_heads % num_kv_heads != 0)
        throw bad_input(file, "num_attention_heads " + std::to_string(num_heads) + " is not a multiple of num_key_value_heads " +
                                  std::to_string(num_kv_heads));
    if (head_dim % 2 != 0) throw bad_input(file, "head_dim " + std::to_string(head_dim) + " must be even for RoPE");
    if (!(rms_norm_eps > 0 && rms_norm_eps < 1)) throw bad_input(file, "rms_norm_eps must be in (0, 1)");
    if (!(rope_theta > 0 && std::isfinite(rope_theta))) throw bad_input(file, "rope_theta must be a positive number");
    validate_rope_scaling(rope_scaling, file, head_dim);
    if (num_experts > 0) {
        range("num_experts", num_experts, 1, 4096);
        range("num_experts_per_tok", experts_per_tok, 1, num_experts);
        range("moe_intermediate_size", moe_intermediate_size, 1, 1u << 20);
        range("shared_expert_intermediate_size", shared_expert_intermediate_size, 0, 1u << 20);
        range("decoder_sparse_step", decoder_sparse_step, 1, 4096);
        for (uint32_t l : mlp_only_layers) range("mlp_only_layers entry", l, 0, num_layers - 1);
    }
    auto check_id = [&](const char* what, int64_t id) {
        if (id < 0 || id >= int64_t(vocab_size))
            throw bad_input(file, std::string(what) + " " + std::to_string(id) + " is outside the vocabulary (vocab_size " +
                                      std::to_string(vocab_size) + ")");
    };
    if (bos_token_id) check_id("bos_token_id", *bos_token_id);
    for (int64_t id : eos_token_ids) check_id("eos_token_id", id);
}

void ModelConfig::to_json(JsonWriter& w) const {
    w.begin_object();
    w.member("architecture", architecture);
    w.member("hidden_size", hidden_size);
    w.member("intermediate_size", intermediate_size);
    w.member("num_layers", num_layers);
    w.member("num_heads", num_heads);
    w.member("num_kv_heads", num_kv_heads);
    w.member("head_dim", head_dim);
    w.member("vocab_size", vocab_size);
    w.member("max_position_embeddings", max_position_embeddings);
    w.member("rms_norm_eps", rms_norm_eps);
    w.member("rope_theta", rope_theta);
    w.key("rope_scaling");
    write_rope_scaling(w, rope_scaling);
    w.member("tie_word_embeddings", tie_word_embeddings);
    w.member("qkv_bias", qkv_bias);
    w.member("o_bias", o_bias);
    w.member("qk_norm", qk_norm);
    w.member("sliding_window", sliding_window);
    if (is_moe()) { // only then, so that a dense model's manifest stays as it was
        w.member("num_experts", num_experts);
        w.member("experts_per_tok", experts_per_tok);
        w.member("moe_intermediate_size", moe_intermediate_size);
        w.member("shared_expert_intermediate_size", shared_expert_intermediate_size);
        w.member("norm_topk_prob", norm_topk_prob);
        w.member("decoder_sparse_step", decoder_sparse_step);
        w.key("mlp_only_layers").begin_array(true);
        for (uint32_t l : mlp_only_layers) w.value(uint64_t(l));
        w.end_array();
    }
    w.key("bos_token_id");
    if (bos_token_id) w.value(*bos_token_id);
    else w.null();
    w.key("eos_token_ids").begin_array(true);
    for (int64_t id : eos_token_ids) w.value(id);
    w.end_array();
    w.end_object();
}

ModelConfig ModelConfig::from_normalized(const std::string& json, const std::string& file) {
    JsonDocument doc(json, file);
    object o = doc.root_object();
    auto need = [&](const char* key) {
        auto e = json_field(o, key);
        if (!e) throw bad_input(file, std::string("config has no '") + key + "'");
        return *e;
    };
    auto u32 = [&](const char* key) {
        uint64_t v = json_to_uint(need(key), file, std::string("config.") + key);
        if (v > UINT32_MAX) throw bad_input(file, std::string("config.") + key + " is too large");
        return uint32_t(v);
    };
    ModelConfig c;
    c.architecture = json_to_string(need("architecture"), file, "config.architecture");
    const ArchInfo* info = find_arch_by_name(c.architecture);
    if (!info) throw unsupported(file, "architecture '" + c.architecture + "' is not supported; rabbit runs " + supported_architectures());
    c.arch = info->arch;
    c.hidden_size = u32("hidden_size");
    c.intermediate_size = u32("intermediate_size");
    c.num_layers = u32("num_layers");
    c.num_heads = u32("num_heads");
    c.num_kv_heads = u32("num_kv_heads");
    c.head_dim = u32("head_dim");
    c.vocab_size = u32("vocab_size");
    c.max_position_embeddings = json_to_uint(need("max_position_embeddings"), file, "config.max_position_embeddings");
    c.rms_norm_eps = json_to_double(need("rms_norm_eps"), file, "config.rms_norm_eps");
    c.rope_theta = json_to_double(need("rope_theta"), file, "config.rope_theta");
    element rs = need("rope_scaling");
    if (!rs.is_null()) c.rope_scaling = parse_rope_scaling(json_to_object(rs, file, "config.rope_scaling"), file, "config.rope_scaling");
    c.tie_word_embeddings = json_to_bool(need("tie_word_embeddings"), file, "config.tie_word_embeddings");
    c.qkv_bias = json_to_bool(need("qkv_bias"), file, "config.qkv_bias");
    c.o_bias = json_to_bool(need("o_bias"), file, "config.o_bias");
    c.qk_norm = json_to_bool(need("qk_norm"), file, "config.qk_norm");
    c.sliding_window = u32("sliding_window");
    if (json_field(o, "num_experts")) {
        c.num_experts = u32("num_experts");
        c.experts_per_tok = u32("experts_per_tok");
        c.moe_intermediate_size = u32("moe_intermediate_size");
        c.shared_expert_intermediate_size = u32("shared_expert_intermediate_size");
        c.norm_topk_prob = json_to_bool(need("norm_topk_prob"), file, "config.norm_topk_prob");
        c.decoder_sparse_step = u32("decoder_sparse_step");
        for (auto v : json_to_array(need("mlp_only_layers"), file, "config.mlp_only_layers")) {
            const uint64_t l = json_to_uint(v, file, "config.mlp_only_layers entry");
            if (l > UINT32_MAX) throw bad_input(file, "config.mlp_only_layers entry is too large");
            c.mlp_only_layers.push_back(uint32_t(l));
        }
    }
    element bos = need("bos_token_id");
    if (!bos.is_null()) c.bos_token_id = json_to_int(bos, file, "config.bos_token_id");
    c.eos_token_ids = parse_token_ids(need("eos_token_ids"), file, "config.eos_token_ids");
    c.validate(file);
    return c;
}

bool ModelConfig::operator==(const ModelConfig& o) const {
    return architecture == o.architecture && arch == o.arch && hidden_size == o.hidden_size &&
           intermediate_size == o.intermediate_size && num_layers == o.num_layers && num_heads == o.num_heads &&
           num_kv_heads == o.num_kv_heads && head_dim == o.head_dim && vocab_size == o.vocab_size &&
           max_position_embeddings == o.max_position_embeddings && rms_norm_eps == o.rms_norm_eps &&
           rope_theta == o.rope_theta && rope_scaling == o.rope_scaling && tie_word_embeddings == o.tie_word_embeddings &&
           qkv_bias == o.qkv_bias && o_bias == o.o_bias && qk_norm == o.qk_norm && sliding_window == o.sliding_window &&
           num_experts == o.num_experts && experts_per_tok == o.experts_per_tok &&
           moe_intermediate_size == o.moe_intermediate_size &&
           shared_expert_intermediate_size == o.shared_expert_intermediate_size && norm_topk_prob == o.norm_topk_prob &&
           decoder_sparse_step == o.decoder_sparse_step && mlp_only_layers == o.mlp_only_layers &&
           bos_token_id == o.bos_token_id && eos_token_ids == o.eos_token_ids;
}

} // namespace rabbit
