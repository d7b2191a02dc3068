// SPDX-License-Identifier: Apache-2.0
#include "common/error.h"
#include "common/json_writer.h"
#include "genmodel.h"
#include "model/config.h"
#include "model/layout.h"

#include <catch2/catch.hpp>

using namespace rabbit;
using Catch::Contains;

namespace {

// config.json files as the published checkpoints ship them (Hugging Face hub).
const char* k_qwen25_7b = R"({
  "architectures": ["Qwen2ForCausalLM"], "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "hidden_act": "silu", "hidden_size": 3584, "initializer_range": 0.02,
  "intermediate_size": 18944, "max_position_embeddings": 32768, "max_window_layers": 28,
  "model_type": "qwen2", "num_attention_heads": 28, "num_hidden_layers": 28, "num_key_value_heads": 4,
  "rms_norm_eps": 1e-06, "rope_theta": 1000000.0, "sliding_window": 131072, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.43.1", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 152064})";
const char* k_qwen25_gen = R"({"bos_token_id": 151643, "pad_token_id": 151643, "do_sample": true,
  "eos_token_id": [151645, 151643], "repetition_penalty": 1.05, "temperature": 0.7, "top_p": 0.8, "top_k": 20})";
const char* k_qwen3_8b = R"({
  "architectures": ["Qwen3ForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 151643,
  "eos_token_id": 151645, "head_dim": 128, "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 12288, "max_position_embeddings": 40960, "max_window_layers": 36, "model_type": "qwen3",
  "num_attention_heads": 32, "num_hidden_layers": 36, "num_key_value_heads": 8, "rms_norm_eps": 1e-06,
  "rope_scaling": null, "rope_theta": 1000000, "sliding_window": null, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.51.0", "use_cache": true, "use_sliding_window": false,
  "vocab_size": 151936})";
const char* k_llama31_8b = R"({
  "architectures": ["LlamaForCausalLM"], "attention_bias": false, "attention_dropout": 0.0, "bos_token_id": 128000,
  "eos_token_id": [128001, 128008, 128009], "hidden_act": "silu", "hidden_size": 4096, "initializer_range": 0.02,
  "intermediate_size": 14336, "max_position_embeddings": 131072, "mlp_bias": false, "model_type": "llama",
  "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8, "pretraining_tp": 1,
  "rms_norm_eps": 1e-05, "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
  "original_max_position_embeddings": 8192, "rope_type": "llama3"}, "rope_theta": 500000.0,
  "tie_word_embeddings": false, "torch_dtype": "bfloat16", "transformers_version": "4.43.0.dev0",
  "use_cache": true, "vocab_size": 128256})";
const char* k_llama2_7b = R"({
  "architectures": ["LlamaForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 11008, "max_position_embeddings": 4096,
  "model_type": "llama", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 32,
  "pretraining_tp": 1, "rms_norm_eps": 1e-05, "rope_scaling": null, "tie_word_embeddings": false,
  "torch_dtype": "float16", "transformers_version": "4.31.0.dev0", "use_cache": true, "vocab_size": 32000})";
const char* k_mistral_v01 = R"({
  "architectures": ["MistralForCausalLM"], "bos_token_id": 1, "eos_token_id": 2, "hidden_act": "silu",
  "hidden_size": 4096, "initializer_range": 0.02, "intermediate_size": 14336, "max_position_embeddings": 32768,
  "model_type": "mistral", "num_attention_heads": 32, "num_hidden_layers": 32, "num_key_value_heads": 8,
  "rms_norm_eps": 1e-05, "rope_theta": 10000.0, "sliding_window": 4096, "tie_word_embeddings": false,
  "torch_dtype": "bfloat16", "transformers_version": "4.34.0.dev0", "use_cache": true, "vocab_size": 32000})";
// transformers 5 writes rope_parameters and dtype.
const char* k_qwen2_v5 = R"({
  "architectures": ["Qwen2ForCausalLM"], "hidden_size": 896, "intermediate_size": 4864, "num_hidden_layers": 24,
  "num_attention_heads": 14, "num_key_value_heads": 2, "vocab_size": 151936, "max_position_embeddings": 32768,
  "rms_norm_eps": 1e-06, "rope_parameters": {"rope_type": "default", "rope_theta": 1000000.0},
  "tie_word_embeddings": true, "dtype": "bfloat16", "use_sliding_window": false})";

std::string with(const std::string& base, const std::string& key, const std::string& value) {
    // Replaces or adds a top-level key (the fixtures hold each key once, on its own).
    std::string quoted = "\"" + key + "\": ";
    auto pos = base.find(quoted);
    if (pos == std::string::npos) return "{" + quoted + value + ", " + base.substr(base.find('{') + 1);
    size_t start = pos + quoted.size();
    int depth = 0;
    size_t end = start;
    for (; end < base.size(); ++end) {
        char c = base[end];
        if (c == '{' || c == '[') ++depth;
        if (c == '}' || c == ']') {
            if (depth == 0) break;
            --depth;
        }
        if (c == ',' && depth == 0) break;
    }
    return base.substr(0, start) + value + base.substr(end);
}

std::string without(const std::string& base, const std::string& key) {
    std::string s = with(base, key, "0");
    std::string quoted = "\"" + key + "\": 0";
    auto pos = s.find(quoted);
    size_t end = pos + quoted.size();
    if (s[end] == ',') ++end;
    return s.substr(0, pos) + s.substr(end);
}

ModelConfig parse(const std::string& text) { return ModelConfig::from_hf(text, "config.json"); }

int code_of(const std::string& text) {
    try {
        parse(text);
    } catch (const Error& e) {
        return int(e.code());
    }
    return 0;
}

} // namespace

TEST_CASE("published Qwen2.5, Qwen3, Llama and Mistral configs parse", "[config]") {
    ModelConfig q = ModelConfig::from_hf(k_qwen25_7b, "config.json", std::string(k_qwen25_gen));
    REQUIRE(q.arch == Arch::qwen2);
    REQUIRE(q.hidden_size == 3584);
    REQUIRE(q.head_dim == 128);
    REQUIRE(q.num_kv_heads == 4);
    REQUIRE(q.qkv_bias);
    REQUIRE(!q.o_bias);
    REQUIRE(!q.qk_norm);
    REQUIRE(!q.tie_word_embeddings);
    REQUIRE(q.rope_theta == 1e6);
    REQUIRE(q.sliding_window == 0); // use_sliding_window: false
    REQUIRE(q.eos_token_ids == std::vector<int64_t>{151645, 151643}); // generation_config.json wins
    REQUIRE(q.bos_token_id == 151643);

    ModelConfig q3 = parse(k_qwen3_8b);
    REQUIRE(q3.arch == Arch::qwen3);
    REQUIRE(q3.qk_norm);
    REQUIRE(!q3.qkv_bias);
    REQUIRE(q3.head_dim == 128);
    REQUIRE(q3.q_dim() == 4096);
    REQUIRE(q3.eos_token_ids == std::vector<int64_t>{151645});

    ModelConfig l = parse(k_llama31_8b);
    REQUIRE(l.arch == Arch::llama);
    REQUIRE(l.rope_scaling.type == RopeScaling::Type::llama3);
    REQUIRE(l.rope_scaling.factor == 8.0);
    REQUIRE(l.rope_scaling.original_max_position_embeddings == 8192);
    REQUIRE(l.eos_token_ids.size() == 3);

    ModelConfig l2 = parse(k_llama2_7b);
    REQUIRE(l2.num_kv_heads == 32);
    REQUIRE(l2.rope_theta == 10000.0); // the class default
    REQUIRE(l2.rope_scaling.type == RopeScaling::Type::none);

    ModelConfig m = parse(k_mistral_v01);
    REQUIRE(m.arch == Arch::mistral);
    REQUIRE(m.sliding_window == 4096);
    REQUIRE(!m.qkv_bias);

    ModelConfig v5 = parse(k_qwen2_v5);
    REQUIRE(v5.rope_theta == 1e6);
    REQUIRE(v5.tie_word_embeddings);
    REQUIRE(v5.head_dim == 64);
}

TEST_CASE("Qwen3 head_dim may differ from hidden / heads, and defaults to 128", "[config]") {
    ModelConfig c = parse(with(k_qwen3_8b, "num_attention_heads", "64"));
    REQUIRE(c.head_dim == 128);
    REQUIRE(c.q_dim() == 8192); // Qwen3-32B-like: q is wider than hidden
    REQUIRE(parse(without(k_qwen3_8b, "head_dim")).head_dim == 128);
    REQUIRE(parse(with(k_llama2_7b, "head_dim", "null")).head_dim == 128); // null means "derive it"
}

TEST_CASE("Llama attention_bias puts a bias on q, k, v and o", "[config]") {
    ModelConfig c = parse(with(k_llama2_7b, "attention_bias", "true"));
    REQUIRE(c.qkv_bias);
    REQUIRE(c.o_bias);
    auto units = model_units(c);
    const auto& layer = units[1];
    bool has_o_bias = false;
    for (const auto& t : layer.tensors) has_o_bias |= t.name == "o_bias";
    REQUIRE(has_o_bias);
}

TEST_CASE("unsupported architectures and features are refused by name", "[config]") {
    std::string gpt2 = with(k_llama2_7b, "architectures", R"(["GPT2LMHeadModel"])");
    REQUIRE_THROWS_WITH(parse(gpt2), Contains("config.json: architecture 'GPT2LMHeadModel' is not supported; rabbit runs "
                                              "Qwen2ForCausalLM, Qwen3ForCausalLM, LlamaForCausalLM, MistralForCausalLM"));
    REQUIRE(code_of(gpt2) == int(ExitCode::unsupported));
    REQUIRE(code_of(with(k_llama2_7b, "architectures", R"(["Gemma2ForCausalLM"])")) == int(ExitCode::unsupported));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "quantization_config", R"({"quant_method": "awq"})")),
                        Contains("quantized checkpoints (quant_method awq)"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "hidden_act", "\"gelu\"")), Contains("hidden_act 'gelu'"));
    REQUIRE_THROWS_WITH(parse(with(k_qwen25_7b, "rope_scaling", R"({"type": "ntk-by-parts", "factor": 4.0})")),
                        Contains("config.json: RoPE scaling type 'ntk-by-parts' is not supported (rabbit supports default, "
                                 "linear, llama3, yarn, dynamic and longrope)"));
    REQUIRE(code_of(with(k_qwen25_7b, "rope_parameters", R"({"rope_type": "su", "factor": 4.0})")) == int(ExitCode::unsupported));
    REQUIRE_THROWS_WITH(parse(with(k_qwen25_7b, "use_sliding_window", "true")), Contains("use_sliding_window"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "mlp_bias", "true")), Contains("mlp_bias"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "partial_rotary_factor", "0.5")), Contains("partial rotary"));
    REQUIRE(code_of(with(k_llama2_7b, "hidden_act", "\"gelu\"")) == int(ExitCode::unsupported));
    // With no architectures, model_type decides.
    REQUIRE(parse(without(k_qwen3_8b, "architectures")).arch == Arch::qwen3);
    REQUIRE_THROWS_WITH(parse(with(without(k_qwen3_8b, "architectures"), "model_type", "\"phi3\"")),
                        Contains("model_type 'phi3' is not supported"));
}

TEST_CASE("inconsistent configs are bad input naming the field", "[config]") {
    REQUIRE_THROWS_WITH(parse(without(k_llama2_7b, "hidden_size")), Contains("config.json: 'hidden_size' is missing"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "num_key_value_heads", "5")),
                        Contains("num_attention_heads 32 is not a multiple of num_key_value_heads 5"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "num_key_value_heads", "64")), Contains("num_key_value_heads is 64"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "head_dim", "127")), Contains("head_dim 127 must be even"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "hidden_size", "4097")), Contains("not a multiple of num_attention_heads"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "eos_token_id", "32000")), Contains("eos_token_id 32000 is outside the vocabulary"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "num_hidden_layers", "\"32\"")),
                        Contains("'num_hidden_layers' must be a non-negative integer"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "rms_norm_eps", "0")), Contains("rms_norm_eps must be in (0, 1)"));
    REQUIRE_THROWS_WITH(parse(with(k_llama31_8b, "rope_scaling", R"({"rope_type": "llama3", "factor": 8.0})")),
                        Contains("needs 'low_freq_factor'"));
    REQUIRE_THROWS_WITH(parse("{\"architectures\": "), Contains("config.json: is not valid JSON"));
    REQUIRE_THROWS_WITH(parse("{}"), Contains("names no architecture"));
    REQUIRE(code_of(without(k_llama2_7b, "vocab_size")) == int(ExitCode::bad_input));
}

TEST_CASE("RoPE scaling: yarn as Qwen's model cards give it, dynamic NTK, longrope", "[config][rope]") {
    // Qwen2.5's model card: add this to config.json for 128K.
    const char* card = R"({"type": "yarn", "factor": 4.0, "original_max_position_embeddings": 32768})";
    ModelConfig q = parse(with(k_qwen25_7b, "rope_scaling", card));
    REQUIRE(q.rope_scaling.type == RopeScaling::Type::yarn);
    REQUIRE(q.rope_scaling.factor == 4.0);
    REQUIRE(q.rope_scaling.original_max_position_embeddings == 32768);
    REQUIRE(q.rope_scaling.beta_fast == 32.0); // transformers' defaults
    REQUIRE(q.rope_scaling.beta_slow == 1.0);
    REQUIRE(q.rope_scaling.truncate);
    REQUIRE(q.max_position_embeddings == 32768);
    REQUIRE(q.max_context() == 131072); // the context the card promises
    // transformers 5's key and rope_type; rope_theta inside it.
    ModelConfig v5 = parse(with(k_qwen2_v5, "rope_parameters",
                                R"({"rope_type": "yarn", "rope_theta": 1000000.0, "factor": 2.0, "original_max_position_embeddings": 4096,
                                    "beta_fast": 16, "beta_slow": 2, "mscale": 0.707, "mscale_all_dim": 1.0, "truncate": false})"));
    REQUIRE(v5.rope_scaling.type == RopeScaling::Type::yarn);
    REQUIRE(v5.rope_theta == 1e6);
    REQUIRE(v5.rope_scaling.beta_fast == 16.0);
    REQUIRE(v5.rope_scaling.mscale == 0.707);
    REQUIRE(!v5.rope_scaling.truncate);
    ModelConfig d = parse(with(k_llama2_7b, "rope_scaling", R"({"type": "dynamic", "factor": 2.0})"));
    REQUIRE(d.rope_scaling.type == RopeScaling::Type::dynamic);
    REQUIRE(d.max_context() == 8192);
    auto list = [](double v) { // 64 values: head_dim / 2 of Llama 2 7B
        std::string s = "[" + std::to_string(v);
        for (int i = 1; i < 64; ++i) s += ", " + std::to_string(v);
        return s + "]";
    };
    ModelConfig l = parse(with(k_llama2_7b, "rope_scaling",
                               R"({"rope_type": "longrope", "original_max_position_embeddings": 2048, "short_factor": )" +
                                   list(1.0) + R"(, "long_factor": )" + list(2.5) + "}"));
    REQUIRE(l.rope_scaling.type == RopeScaling::Type::longrope);
    REQUIRE(l.rope_scaling.long_factor.size() == 64);
    REQUIRE(l.max_context() == 4096);
    for (const ModelConfig* c : {&q, &v5, &d, &l}) { // and through the manifest
        JsonWriter w;
        c->to_json(w);
        REQUIRE(ModelConfig::from_normalized(w.str(), "manifest.json") == *c);
    }
}

TEST_CASE("RoPE scaling that lacks what its type needs is bad input naming config.json", "[config][rope]") {
    auto message = [](const std::string& text) {
        try {
            parse(text);
        } catch (const Error& e) {
            return std::make_pair(int(e.code()), std::string(e.what()));
        }
        return std::make_pair(0, std::string());
    };
    auto [code, what] = message(with(k_qwen25_7b, "rope_scaling", R"({"type": "yarn", "factor": 4.0})"));
    REQUIRE(code == int(ExitCode::bad_input));
    REQUIRE_THAT(what, Contains("config.json: rope_scaling of type yarn needs 'original_max_position_embeddings'"));
    REQUIRE(what.find('\n') == std::string::npos);
    std::tie(code, what) = message(with(k_qwen25_7b, "rope_scaling", R"({"type": "yarn", "original_max_position_embeddings": 32768})"));
    REQUIRE(code == int(ExitCode::bad_input));
    REQUIRE_THAT(what, Contains("config.json: rope_scaling of type yarn needs 'factor'"));
    std::tie(code, what) = message(with(k_qwen2_v5, "rope_parameters", R"({"rope_type": "yarn", "factor": null, "original_max_position_embeddings": 64})"));
    REQUIRE_THAT(what, Contains("config.json: rope_parameters of type yarn needs 'factor'"));
    std::tie(code, what) = message(with(k_qwen25_7b, "rope_scaling", R"({"type": "yarn", "factor": -4, "original_max_position_embeddings": 32768})"));
    REQUIRE(code == int(ExitCode::bad_input));
    REQUIRE_THAT(what, Contains("factor must be a positive number"));
    std::tie(code, what) = message(with(k_qwen25_7b, "rope_scaling", R"({"type": "yarn", "factor": 4, "original_max_position_embeddings": 0})"));
    REQUIRE_THAT(what, Contains("yarn RoPE scaling needs original_max_position_embeddings > 0"));
    std::tie(code, what) = message(with(k_llama2_7b, "rope_scaling", R"({"type": "dynamic"})"));
    REQUIRE_THAT(what, Contains("rope_scaling of type dynamic needs 'factor'"));
    std::tie(code, what) = message(with(k_llama2_7b, "rope_scaling",
                                        R"({"type": "longrope", "original_max_position_embeddings": 2048, "short_factor": [1], "long_factor": [1]})"));
    REQUIRE(code == int(ExitCode::bad_input));
    REQUIRE_THAT(what, Contains("longrope short_factor and long_factor need head_dim / 2 = 64 values each, not 1"));
}

TEST_CASE("the normalized config round-trips through the manifest form", "[config]") {
    for (const char* text : {k_qwen25_7b, k_qwen3_8b, k_llama31_8b, k_llama2_7b, k_mistral_v01, k_qwen2_v5}) {
        ModelConfig c = parse(text);
        JsonWriter w;
        c.to_json(w);
        ModelConfig back = ModelConfig::from_normalized(w.str(), "manifest.json");
        REQUIRE(back == c);
    }
}

TEST_CASE("every generator preset writes a config.json that parses back to it", "[config][genmodel]") {
    for (const auto& name : preset_names()) {
        INFO(name);
        GenSpec spec = preset_spec(name);
        ModelConfig back = ModelConfig::from_hf(hf_config_json(spec.config, DType::bf16), "config.json",
                                                hf_generation_config_json(spec.config));
        REQUIRE(back == spec.config);
    }
}

TEST_CASE("generated configs with yarn, dynamic and longrope parse back, under either key", "[config][genmodel][rope]") {
    GenSpec spec = preset_spec("tiny-qwen3");
    RopeScaling& s = spec.config.rope_scaling;
    s.type = RopeScaling::Type::yarn, s.factor = 4, s.original_max_position_embeddings = 1024;
    s.beta_fast = 16, s.mscale = 0.707, s.mscale_all_dim = 1.0, s.truncate = false;
    std::vector<RopeScaling> all = {s};
    s = {};
    s.type = RopeScaling::Type::dynamic, s.factor = 2;
    all.push_back(s);
    s = {};
    s.type = RopeScaling::Type::longrope, s.factor = 0, s.original_max_position_embeddings = 512;
    s.short_factor.assign(12, 1.5), s.long_factor.assign(12, 3.25), s.attention_factor = 1.1;
    all.push_back(s);
    for (const RopeScaling& r : all) {
        spec.config.rope_scaling = r;
        for (bool v5 : {false, true}) {
            INFO(int(r.type) << (v5 ? " rope_parameters" : " rope_scaling"));
            ModelConfig back = ModelConfig::from_hf(hf_config_json(spec.config, DType::bf16, v5), "config.json",
                                                    hf_generation_config_json(spec.config));
            REQUIRE(back == spec.config);
        }
    }
}

TEST_CASE("units: the embedding, every layer in order, the norm, lm_head unless tied", "[config][layout]") {
    ModelConfig c = parse(k_qwen3_8b);
    auto units = model_units(c);
    REQUIRE(units.size() == 36 + 3);
    REQUIRE(units.front().name == "embed");
    REQUIRE(units[1].file == "layer.000.rbt");
    REQUIRE(units[36].file == "layer.035.rbt");
    REQUIRE(units[37].name == "norm");
    REQUIRE(units[38].name == "lm_head");
    const auto& layer = units[1].tensors;
    std::vector<std::string> names;
    for (const auto& t : layer) names.push_back(t.name);
    REQUIRE(names == std::vector<std::string>{"attn_norm", "qkv", "q_norm", "k_norm", "o", "ffn_norm", "gate_up", "down"});
    REQUIRE(layer[1].shape == std::vector<uint64_t>{4096 + 2 * 1024, 4096});
    REQUIRE(layer[6].shape == std::vector<uint64_t>{2 * 12288, 4096});
    c.tie_word_embeddings = true;
    REQUIRE(model_units(c).back().name == "norm");
    c.num_layers = 1200;
    REQUIRE(model_units(c)[1].file == "layer.0000.rbt");
}

// Defaults for absent keys follow the transformers 5 config classes (configuration_*.py of
// transformers 5.23): an absent key takes the class default, an explicit null its fallback.
TEST_CASE("absent keys take the transformers defaults of each architecture", "[config]") {
    // Mistral: num_key_value_heads 8 and sliding_window 4096 when absent; null means none.
    ModelConfig m = parse(without(without(k_mistral_v01, "num_key_value_heads"), "sliding_window"));
    REQUIRE(m.num_kv_heads == 8);
    REQUIRE(m.sliding_window == 4096);
    REQUIRE(parse(with(k_mistral_v01, "sliding_window", "null")).sliding_window == 0);
    REQUIRE(parse(with(k_mistral_v01, "num_key_value_heads", "null")).num_kv_heads == 32);
    // Qwen2 and Qwen3: num_key_value_heads 32 when absent (more than Qwen2.5-7B's 28 heads).
    REQUIRE_THROWS_WITH(parse(without(k_qwen25_7b, "num_key_value_heads")), Contains("num_key_value_heads is 32"));
    REQUIRE(parse(without(k_qwen3_8b, "num_key_value_heads")).num_kv_heads == 32);
    REQUIRE(parse(with(k_qwen3_8b, "num_key_value_heads", "null")).num_kv_heads == 32);
    // Llama: num_key_value_heads falls back to the heads; bos 1 and eos 2 when absent.
    ModelConfig l = parse(without(without(without(k_llama31_8b, "num_key_value_heads"), "bos_token_id"), "eos_token_id"));
    REQUIRE(l.num_kv_heads == 32);
    REQUIRE(l.bos_token_id == 1);
    REQUIRE(l.eos_token_ids == std::vector<int64_t>{2});
    // Qwen has no default special tokens.
    REQUIRE(!parse(without(k_qwen3_8b, "bos_token_id")).bos_token_id);
    // max_position_embeddings and rms_norm_eps defaults.
    REQUIRE(parse(without(k_llama2_7b, "max_position_embeddings")).max_position_embeddings == 2048);
    REQUIRE(parse(without(k_mistral_v01, "max_position_embeddings")).max_position_embeddings == 131072);
    REQUIRE(parse(without(k_qwen3_8b, "rms_norm_eps")).rms_norm_eps == 1e-6);
}

TEST_CASE("RoPE parameters are read the way transformers 5 reads them", "[config]") {
    // rope_parameters' own rope_theta wins over the top-level one.
    ModelConfig a = parse(with(with(k_qwen2_v5, "rope_theta", "5.0"), "rope_parameters",
                               R"({"rope_type": "default", "rope_theta": 7.0})"));
    REQUIRE(a.rope_theta == 7.0);
    // A rope_scaling object wins over rope_parameters.
    ModelConfig b = parse(with(k_qwen2_v5, "rope_scaling", R"({"rope_type": "linear", "factor": 2.0})"));
    REQUIRE(b.rope_scaling.type == RopeScaling::Type::linear);
    // ...entirely: rope_parameters' theta goes with it, and with no top-level rope_theta the
    // class default applies.
    REQUIRE(b.rope_theta == 10000.0);
}

TEST_CASE("ambiguous or loosely typed JSON is refused", "[config]") {
    // Python's json keeps the last of two equal keys, simdjson the first: neither is safe.
    std::string twice = std::string(k_qwen2_v5);
    twice.insert(twice.rfind('}'), R"(, "tie_word_embeddings": false)");
    REQUIRE_THROWS_WITH(parse(twice), Contains("key 'tie_word_embeddings' appears twice"));
    REQUIRE_THROWS_WITH(parse(with(k_llama2_7b, "num_hidden_layers", "32.0")),
                        Contains("'num_hidden_layers' must be a non-negative integer, got 32.0"));
}
