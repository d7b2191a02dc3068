// SPDX-License-Identifier: Apache-2.0
#include "genmodel.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/hash.h"
#include "common/json_writer.h"
#include "format/hf_checkpoint.h"
#include "model/rope_scaling.h"
#include "format/safetensors_writer.h"

#include <spdlog/fmt/fmt.h>

#include <cerrno>
#include <cmath>
#include <cstdio>
#include <sys/stat.h>

namespace rabbit {

namespace {

struct Preset {
    const char* name;
    Arch arch;
    uint32_t hidden, inter, layers, heads, kv_heads, head_dim, vocab;
    uint64_t max_pos;
    double rope_theta, eps;
    bool tied;
    int64_t bos; // -1: none
    std::vector<int64_t> eos;
    RopeScaling rope_scaling = {};
    uint32_t sliding_window = 0;
    struct Moe {
        uint32_t experts = 0, per_tok = 0, inter = 0, shared_inter = 0;
        bool norm_topk = false;
    } moe = {}; // experts 0: dense
};

RopeScaling llama3_scaling(double factor, uint64_t original) {
    RopeScaling r;
    r.type = RopeScaling::Type::llama3;
    r.factor = factor;
    r.low_freq_factor = 1.0;
    r.high_freq_factor = 4.0;
    r.original_max_position_embeddings = original;
    return r;
}

// Published shapes and settings. The tiny ones use odd sizes on purpose.
const std::vector<Preset>& presets() {
    static const std::vector<Preset> p = {
        {"qwen2.5-0.5b", Arch::qwen2, 896, 4864, 24, 14, 2, 0, 151936, 32768, 1e6, 1e-6, true, 151643, {151645, 151643}},
        {"qwen2.5-1.5b", Arch::qwen2, 1536, 8960, 28, 12, 2, 0, 151936, 32768, 1e6, 1e-6, true, 151643, {151645, 151643}},
        {"qwen2.5-3b", Arch::qwen2, 2048, 11008, 36, 16, 2, 0, 151936, 32768, 1e6, 1e-6, true, 151643, {151645, 151643}},
        {"qwen2.5-7b", Arch::qwen2, 3584, 18944, 28, 28, 4, 0, 152064, 32768, 1e6, 1e-6, false, 151643, {151645, 151643}},
        {"qwen2.5-14b", Arch::qwen2, 5120, 13824, 48, 40, 8, 0, 152064, 32768, 1e6, 1e-5, false, 151643, {151645, 151643}},
        {"qwen2.5-32b", Arch::qwen2, 5120, 27648, 64, 40, 8, 0, 152064, 32768, 1e6, 1e-5, false, 151643, {151645, 151643}},
        {"qwen2.5-72b", Arch::qwen2, 8192, 29568, 80, 64, 8, 0, 152064, 32768, 1e6, 1e-6, false, 151643, {151645, 151643}},
        {"qwen3-0.6b", Arch::qwen3, 1024, 3072, 28, 16, 8, 128, 151936, 40960, 1e6, 1e-6, true, 151643, {151645, 151643}},
        {"qwen3-8b", Arch::qwen3, 4096, 12288, 36, 32, 8, 128, 151936, 40960, 1e6, 1e-6, false, 151643, {151645, 151643}},
        {"qwen3-32b", Arch::qwen3, 5120, 25600, 64, 64, 8, 128, 151936, 40960, 1e6, 1e-6, false, 151643, {151645, 151643}},
        {"llama3.2-1b", Arch::llama, 2048, 8192, 16, 32, 8, 64, 128256, 131072, 500000, 1e-5, true, 128000,
         {128001, 128008, 128009}, llama3_scaling(32, 8192)},
        {"llama3.1-8b", Arch::llama, 4096, 14336, 32, 32, 8, 0, 128256, 131072, 500000, 1e-5, false, 128000,
         {128001, 128008, 128009}, llama3_scaling(8, 8192)},
        {"llama2-7b", Arch::llama, 4096, 11008, 32, 32, 32, 0, 32000, 4096, 10000, 1e-5, false, 1, {2}},
        {"mistral-7b-v0.1", Arch::mistral, 4096, 14336, 32, 32, 8, 0, 32000, 32768, 10000, 1e-5, false, 1, {2}, {}, 4096},
        {"mistral-7b-v0.3", Arch::mistral, 4096, 14336, 32, 32, 8, 0, 32768, 32768, 1e6, 1e-5, false, 1, {2}},
        // Mixtures of experts (every layer sparse, as published): experts, k, expert and
        // shared-expert intermediate sizes, norm_topk_prob.
        {"qwen3-30b-a3b", Arch::qwen3_moe, 2048, 6144, 48, 32, 4, 128, 151936, 40960, 1e6, 1e-6, false, 151643,
         {151645, 151643}, {}, 0, {128, 8, 768, 0, true}},
        {"qwen3-235b-a22b", Arch::qwen3_moe, 4096, 12288, 94, 64, 4, 128, 151936, 40960, 1e6, 1e-6, false, 151643,
         {151645, 151643}, {}, 0, {128, 8, 1536, 0, true}},
        {"qwen2-57b-a14b", Arch::qwen2_moe, 3584, 18944, 28, 28, 4, 0, 151936, 32768, 1e6, 1e-6, false, 151643,
         {151643}, {}, 0, {64, 8, 2560, 20480, false}},
        {"mixtral-8x7b", Arch::mixtral, 4096, 14336, 32, 32, 8, 0, 32000, 32768, 1e6, 1e-5, false, 1, {2}, {}, 0,
         {8, 2, 14336, 0, true}},
        {"tiny-qwen3-moe", Arch::qwen3_moe, 64, 160, 3, 4, 2, 24, 512, 4096, 1e6, 1e-6, false, 1, {2}, {}, 0,
         {8, 2, 40, 0, true}},
        {"tiny-qwen2-moe", Arch::qwen2_moe, 64, 176, 2, 4, 2, 0, 512, 4096, 1e6, 1e-6, false, 1, {2}, {}, 0,
         {6, 3, 24, 48, false}},
        {"tiny-mixtral", Arch::mixtral, 96, 72, 2, 6, 2, 0, 384, 1024, 1e6, 1e-5, false, 1, {2}, {}, 0, {4, 2, 72, 0, true}},
        {"tiny-qwen2", Arch::qwen2, 64, 176, 2, 4, 2, 0, 512, 4096, 1e6, 1e-6, true, 1, {2, 3}},
        {"tiny-qwen3", Arch::qwen3, 64, 160, 2, 4, 2, 24, 512, 4096, 1e6, 1e-6, false, 1, {2}},
        {"tiny-llama3", Arch::llama, 64, 192, 2, 8, 2, 0, 512, 512, 500000, 1e-5, false, 1, {2}, llama3_scaling(8, 64)},
        {"tiny-mistral", Arch::mistral, 96, 224, 3, 6, 2, 0, 384, 1024, 10000, 1e-5, false, 1, {2}, {}, 256},
    };
    return p;
}

uint64_t splitmix64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

// Approximately standard normal (Irwin-Hall of four uniforms), from a counter: element i of
// a tensor does not depend on how the tensor is written.
inline float normal_at(uint64_t stream, uint64_t i) {
    uint64_t r = splitmix64(stream + i * 0x632be59bd9b4e019ull);
    float s = float(r & 0xffff) + float((r >> 16) & 0xffff) + float((r >> 32) & 0xffff) + float(r >> 48);
    return (s * (1.0f / 65536.0f) - 2.0f) * 1.7320508f;
}

enum class Init { normal, norm_weight, bias };

struct GenTensor {
    std::string name;
    std::vector<uint64_t> shape;
    Init init;
    float scale;
};

// A MoE layer's MLP under Hugging Face's names (Mixtral's w1/w3/w2 under block_sparse_moe).
// The router's scale spreads tokens over the experts about evenly, as random routers do.
void add_moe_tensors(const GenSpec& spec, const std::string& p, std::vector<GenTensor>& t) {
    const ModelConfig& c = spec.config;
    const uint64_t h = c.hidden_size, e_inter = c.moe_intermediate_size, s_inter = c.shared_expert_intermediate_size;
    const float in_h = 1.0f / std::sqrt(float(h));
    const bool mixtral = c.arch == Arch::mixtral;
    const std::string moe = p + (mixtral ? "block_sparse_moe." : "mlp.");
    t.push_back({moe + "gate.weight", {c.num_experts, h}, Init::normal, in_h});
    if (s_inter) {
        t.push_back({moe + "shared_expert_gate.weight", {1, h}, Init::normal, in_h});
        t.push_back({moe + "shared_expert.gate_proj.weight", {s_inter, h}, Init::normal, in_h * spec.mlp_scale});
        t.push_back({moe + "shared_expert.up_proj.weight", {s_inter, h}, Init::normal, in_h * spec.mlp_scale});
        t.push_back({moe + "shared_expert.down_proj.weight", {h, s_inter}, Init::normal, 1.0f / std::sqrt(float(s_inter))});
    }
    for (uint32_t e = 0; e < c.num_experts; ++e) {
        const std::string x = moe + "experts." + std::to_string(e) + ".";
        t.push_back({x + (mixtral ? "w1.weight" : "gate_proj.weight"), {e_inter, h}, Init::normal, in_h * spec.mlp_scale});
        t.push_back({x + (mixtral ? "w3.weight" : "up_proj.weight"), {e_inter, h}, Init::normal, in_h * spec.mlp_scale});
        t.push_back({x + (mixtral ? "w2.weight" : "down_proj.weight"), {h, e_inter}, Init::normal,
                     1.0f / std::sqrt(float(e_inter))});
    }
}

std::vector<GenTensor> model_tensors(const GenSpec& spec) {
    const ModelConfig& c = spec.config;
    const uint64_t h = c.hidden_size, inter = c.intermediate_size, v = c.vocab_size, q = c.q_dim(), kv = c.kv_dim();
    const float in_h = 1.0f / std::sqrt(float(h));
    std::vector<GenTensor> t;
    const bool alias = c.tie_word_embeddings && spec.tied_as_alias;
    t.push_back({alias ? "lm_head.weight" : "model.embed_tokens.weight", {v, h}, Init::normal, 1.0f});
    for (uint32_t l = 0; l < c.num_layers; ++l) {
        const std::string p = "model.layers." + std::to_string(l) + ".";
        t.push_back({p + "input_layernorm.weight", {h}, Init::norm_weight, 0.1f});
        t.push_back({p + "self_attn.q_proj.weight", {q, h}, Init::normal, in_h});
        t.push_back({p + "self_attn.k_proj.weight", {kv, h}, Init::normal, in_h});
        t.push_back({p + "self_attn.v_proj.weight", {kv, h}, Init::normal, in_h});
        if (c.qkv_bias) {
            t.push_back({p + "self_attn.q_proj.bias", {q}, Init::bias, 0.5f});
            t.push_back({p + "self_attn.k_proj.bias", {kv}, Init::bias, 0.5f});
            t.push_back({p + "self_attn.v_proj.bias", {kv}, Init::bias, 0.5f});
        }
        if (c.qk_norm) {
            t.push_back({p + "self_attn.q_norm.weight", {c.head_dim}, Init::norm_weight, 0.1f});
            t.push_back({p + "self_attn.k_norm.weight", {c.head_dim}, Init::norm_weight, 0.1f});
        }
        t.push_back({p + "self_attn.o_proj.weight", {h, q}, Init::normal, 1.0f / std::sqrt(float(q))});
        if (c.o_bias) t.push_back({p + "self_attn.o_proj.bias", {h}, Init::bias, 0.5f});
        t.push_back({p + "post_attention_layernorm.weight", {h}, Init::norm_weight, 0.1f});
        if (c.moe_layer(l)) {
            add_moe_tensors(spec, p, t);
            continue;
        }
        t.push_back({p + "mlp.gate_proj.weight", {inter, h}, Init::normal, in_h * spec.mlp_scale});
        t.push_back({p + "mlp.up_proj.weight", {inter, h}, Init::normal, in_h * spec.mlp_scale});
        t.push_back({p + "mlp.down_proj.weight", {h, inter}, Init::normal, 1.0f / std::sqrt(float(inter))});
    }
    t.push_back({"model.norm.weight", {h}, Init::norm_weight, 0.1f});
    if (!c.tie_word_embeddings) t.push_back({"lm_head.weight", {v, h}, Init::normal, in_h});
    return t;
}

const char* torch_dtype(DType t) {
    switch (t) {
    case DType::f32: return "float32";
    case DType::f16: return "float16";
    case DType::bf16: return "bfloat16";
    default: return "float32";
    }
}

const char* model_type(Arch a) {
    switch (a) {
    case Arch::qwen2: return "qwen2";
    case Arch::qwen3: return "qwen3";
    case Arch::llama: return "llama";
    case Arch::mistral: return "mistral";
    case Arch::qwen2_moe: return "qwen2_moe";
    case Arch::qwen3_moe: return "qwen3_moe";
    case Arch::mixtral: return "mixtral";
    }
    return "";
}

void ensure_dir(const std::string& dir) {
    if (::mkdir(dir.c_str(), 0755) != 0 && errno != EEXIST) throw output_error(dir, "cannot create: " + errno_text(errno));
}

void write_tensor_data(SafetensorsWriter& w, const GenTensor& t, DType dtype, uint64_t seed) {
    const std::string& n = t.name;
    const uint64_t stream = splitmix64(seed ^ hash_bytes(n.data(), n.size()));
    uint64_t numel = 1;
    for (uint64_t d : t.shape) numel *= d;
    constexpr uint64_t chunk = 1u << 20;
    std::vector<float> vals(size_t(std::min(numel, chunk)));
    std::vector<uint8_t> bytes(vals.size() * dtype_size(dtype));
    for (uint64_t start = 0; start < numel; start += chunk) {
        const size_t m = size_t(std::min(chunk, numel - start));
        for (size_t i = 0; i < m; ++i) {
            float x = normal_at(stream, start + i) * t.scale;
            vals[i] = t.init == Init::norm_weight ? 1.0f + x : x;
        }
        convert_elements(vals.data(), DType::f32, bytes.data(), dtype, m);
        w.append(bytes.data(), m * dtype_size(dtype));
    }
}

// The RoPE scaling object as config.json gives it: the keys a type needs, and the optional
// ones only where they differ from transformers' defaults (an attention_factor of 0 would be
// taken literally). With rope_parameters, rope_theta goes inside and "default" has an object.
void write_hf_rope(JsonWriter& w, const ModelConfig& c, bool rope_parameters) {
    using Type = RopeScaling::Type;
    const RopeScaling& s = c.rope_scaling;
    if (s.type == Type::none && !rope_parameters) {
        w.null();
        return;
    }
    w.begin_object().member("rope_type", rope_type_name(s.type));
    if (rope_parameters) w.member("rope_theta", c.rope_theta);
    if (s.type != Type::none && (s.type != Type::longrope || s.factor > 0)) w.member("factor", s.factor);
    if (s.type == Type::llama3) w.member("low_freq_factor", s.low_freq_factor).member("high_freq_factor", s.high_freq_factor);
    if (s.type == Type::llama3 || s.type == Type::yarn || s.type == Type::longrope)
        w.member("original_max_position_embeddings", s.original_max_position_embeddings);
    if (s.type == Type::yarn) {
        if (s.beta_fast != 32.0) w.member("beta_fast", s.beta_fast);
        if (s.beta_slow != 1.0) w.member("beta_slow", s.beta_slow);
        if (s.mscale != 0) w.member("mscale", s.mscale);
        if (s.mscale_all_dim != 0) w.member("mscale_all_dim", s.mscale_all_dim);
        if (!s.truncate) w.member("truncate", false);
    }
    if ((s.type == Type::yarn || s.type == Type::longrope) && s.attention_factor > 0) w.member("attention_factor", s.attention_factor);
    if (s.type == Type::longrope) {
        w.key("short_factor").begin_array(true);
        for (double x : s.short_factor) w.value(x);
        w.end_array().key("long_factor").begin_array(true);
        for (double x : s.long_factor) w.value(x);
        w.end_array();
    }
    w.end_object();
}

// The experts, under the keys transformers' config classes read.
void write_hf_moe(JsonWriter& w, const ModelConfig& c) {
    if (!c.is_moe()) return;
    if (c.arch == Arch::mixtral) {
        w.member("num_local_experts", c.num_experts).member("num_experts_per_tok", c.experts_per_tok);
        w.member("router_jitter_noise", 0.0);
        return;
    }
    w.member("num_experts", c.num_experts).member("num_experts_per_tok", c.experts_per_tok);
    w.member("moe_intermediate_size", c.moe_intermediate_size).member("norm_topk_prob", c.norm_topk_prob);
    w.member("decoder_sparse_step", c.decoder_sparse_step);
    if (c.arch == Arch::qwen2_moe) w.member("shared_expert_intermediate_size", c.shared_expert_intermediate_size);
    w.key("mlp_only_layers").begin_array(true);
    for (uint32_t l : c.mlp_only_layers) w.value(uint64_t(l));
    w.end_array();
}

} // namespace

std::vector<std::string> preset_names() {
    std::vector<std::string> names;
    for (const auto& p : presets()) names.push_back(p.name);
    return names;
}

GenSpec preset_spec(const std::string& name) {
    for (const auto& p : presets()) {
        if (name != p.name) continue;
        GenSpec s;
        ModelConfig& c = s.config;
        c.arch = p.arch;
        c.architecture = arch_name(p.arch);
        c.hidden_size = p.hidden;
        c.intermediate_size = p.inter;
        c.num_layers = p.layers;
        c.num_heads = p.heads;
        c.num_kv_heads = p.kv_heads;
        c.head_dim = p.head_dim ? p.head_dim : p.hidden / p.heads;
        c.vocab_size = p.vocab;
        c.max_position_embeddings = p.max_pos;
        c.rope_theta = p.rope_theta;
        c.rms_norm_eps = p.eps;
        c.rope_scaling = p.rope_scaling;
        c.tie_word_embeddings = p.tied;
        c.qkv_bias = p.arch == Arch::qwen2 || p.arch == Arch::qwen2_moe;
        c.qk_norm = p.arch == Arch::qwen3 || p.arch == Arch::qwen3_moe;
        c.num_experts = p.moe.experts;
        c.experts_per_tok = p.moe.per_tok;
        c.moe_intermediate_size = p.moe.inter;
        c.shared_expert_intermediate_size = p.moe.shared_inter;
        c.norm_topk_prob = p.moe.norm_topk;
        c.sliding_window = p.sliding_window;
        if (p.bos >= 0) c.bos_token_id = p.bos;
        c.eos_token_ids = p.eos;
        return s;
    }
    std::string all;
    for (const auto& n : preset_names()) all += (all.empty() ? "" : ", ") + n;
    throw Error(ExitCode::usage, "unknown preset '" + name + "'; presets: " + all);
}

std::string hf_config_json(const ModelConfig& c, DType dtype, bool rope_parameters) {
    JsonWriter w;
    w.begin_object();
    w.key("architectures").begin_array(true).value(c.architecture).end_array();
    w.member("model_type", model_type(c.arch));
    w.member("hidden_size", c.hidden_size);
    w.member("intermediate_size", c.intermediate_size);
    w.member("num_hidden_layers", c.num_layers);
    w.member("num_attention_heads", c.num_heads);
    w.member("num_key_value_heads", c.num_kv_heads);
    if (c.arch == Arch::qwen3 || c.arch == Arch::qwen3_moe || c.head_dim != c.hidden_size / c.num_heads || c.hidden_size % c.num_heads != 0)
        w.member("head_dim", c.head_dim);
    w.member("vocab_size", c.vocab_size);
    w.member("max_position_embeddings", c.max_position_embeddings);
    w.member("rms_norm_eps", c.rms_norm_eps);
    if (rope_parameters) {
        w.key("rope_parameters");
        write_hf_rope(w, c, true);
    } else {
        w.member("rope_theta", c.rope_theta);
        w.key("rope_scaling");
        write_hf_rope(w, c, false);
    }
    w.member("hidden_act", "silu");
    w.member("tie_word_embeddings", c.tie_word_embeddings);
    w.member("torch_dtype", torch_dtype(dtype));
    w.member("attention_dropout", 0.0);
    w.member("initializer_range", 0.02);
    w.member("use_cache", true);
    switch (c.arch) {
    case Arch::qwen2:
        w.member("use_sliding_window", false);
        w.member("max_window_layers", c.num_layers);
        break;
    case Arch::qwen3:
        w.member("attention_bias", c.qkv_bias);
        w.member("use_sliding_window", false);
        w.member("max_window_layers", c.num_layers);
        break;
    case Arch::llama:
        w.member("attention_bias", c.qkv_bias);
        w.member("mlp_bias", false);
        w.member("pretraining_tp", 1);
        break;
    case Arch::mistral:
    case Arch::mixtral:
        w.key("sliding_window");
        if (c.sliding_window) w.value(c.sliding_window);
        else w.null();
        break;
    case Arch::qwen2_moe:
    case Arch::qwen3_moe:
        if (c.arch == Arch::qwen2_moe) w.member("qkv_bias", c.qkv_bias);
        else w.member("attention_bias", c.qkv_bias);
        w.member("use_sliding_window", false);
        w.member("max_window_layers", c.num_layers);
        break;
    }
    write_hf_moe(w, c);
    w.key("bos_token_id");
    if (c.bos_token_id) w.value(*c.bos_token_id);
    else w.null();
    w.key("eos_token_id");
    if (c.eos_token_ids.empty()) w.null();
    else w.value(c.eos_token_ids.front());
    w.end_object();
    return w.str() + "\n";
}

std::string hf_generation_config_json(const ModelConfig& c) {
    JsonWriter w;
    w.begin_object();
    if (c.bos_token_id) w.member("bos_token_id", *c.bos_token_id);
    w.key("eos_token_id");
    if (c.eos_token_ids.size() == 1) {
        w.value(c.eos_token_ids[0]);
    } else {
        w.begin_array(true);
        for (int64_t id : c.eos_token_ids) w.value(id);
        w.end_array();
    }
    w.end_object();
    return w.str() + "\n";
}

uint64_t generate_model(const GenSpec& spec, const std::string& out_dir) {
    spec.config.validate("model spec");
    ensure_dir(out_dir);
    write_file_atomic(join_path(out_dir, "config.json"), hf_config_json(spec.config, spec.dtype, spec.rope_parameters));
    write_file_atomic(join_path(out_dir, "generation_config.json"), hf_generation_config_json(spec.config));
    if (!spec.tokenizer_dir.empty()) {
        bool any = false;
        for (const auto& name : hf_companion_files()) {
            if (name == "config.json" || name == "generation_config.json") continue;
            const std::string from = join_path(spec.tokenizer_dir, name);
            if (!path_exists(from)) continue;
            copy_file_atomic(from, join_path(out_dir, name));
            any = true;
        }
        if (!any) throw bad_input(spec.tokenizer_dir, "holds no tokenizer files (tokenizer.json, tokenizer.model, ...)");
    }

    // Shards: tensors in model order, a new file once the current one holds its share.
    std::vector<GenTensor> tensors = model_tensors(spec);
    const uint32_t n_shards = std::max<uint32_t>(1, std::min<uint32_t>(spec.shards, uint32_t(tensors.size())));
    auto bytes_of = [&](const GenTensor& t) {
        uint64_t n = dtype_size(spec.dtype);
        for (uint64_t d : t.shape) n *= d;
        return n;
    };
    uint64_t total = 0;
    for (const auto& t : tensors) total += bytes_of(t);
    std::vector<std::vector<size_t>> groups(n_shards);
    {
        uint64_t acc = 0;
        size_t g = 0;
        for (size_t i = 0; i < tensors.size(); ++i) {
            // Move on when this shard has its share, keeping one tensor for each shard left.
            const size_t left = tensors.size() - i;
            if (g + 1 < n_shards && !groups[g].empty() &&
                (acc >= total * (g + 1) / n_shards || left <= n_shards - 1 - g))
                ++g;
            groups[g].push_back(i);
            acc += bytes_of(tensors[i]);
        }
    }

    std::map<std::string, std::string> metadata = {{"format", "pt"}};
    if (spec.config.tie_word_embeddings && spec.tied_as_alias) metadata["model.embed_tokens.weight"] = "lm_head.weight";
    JsonWriter index;
    index.begin_object();
    index.key("metadata").begin_object().member("total_size", total).end_object();
    index.key("weight_map").begin_object();
    for (uint32_t g = 0; g < n_shards; ++g) {
        const std::string name =
            n_shards == 1 ? std::string("model.safetensors") : fmt::format("model-{:05}-of-{:05}.safetensors", g + 1, n_shards);
        std::vector<SafetensorsSpec> specs;
        for (size_t i : groups[g]) {
            specs.push_back({tensors[i].name, spec.dtype, tensors[i].shape});
            index.member(tensors[i].name, name);
        }
        SafetensorsWriter w(join_path(out_dir, name), specs, metadata);
        if (spec.sparse) w.fill_with_holes();
        else
            for (size_t i : groups[g]) write_tensor_data(w, tensors[i], spec.dtype, spec.seed);
        w.commit();
    }
    index.end_object().end_object();
    if (n_shards > 1) write_file_atomic(join_path(out_dir, "model.safetensors.index.json"), index.str() + "\n");
    return total;
}

} // namespace rabbit
