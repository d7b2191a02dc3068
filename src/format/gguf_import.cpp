// SPDX-License-Identifier: Apache-2.0
#include "format/gguf_import.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_writer.h"
#include "common/strings.h"
#include "format/gguf_moe.h"
#include "format/gguf_rope.h"
#include "format/gguf_tokenizer.h"

#include <spdlog/spdlog.h>


namespace rabbit {

namespace {

struct ArchName {
    const char* gguf;
    const char* hf;
};
constexpr ArchName k_archs[] = {{"llama", "LlamaForCausalLM"},        {"qwen2", "Qwen2ForCausalLM"},
                                {"qwen3", "Qwen3ForCausalLM"},        {"qwen2moe", "Qwen2MoeForCausalLM"},
                                {"qwen3moe", "Qwen3MoeForCausalLM"}}; // llama with experts: Mixtral, below

// GGUF's per-layer tensor names and the Hugging Face ones, after "blk.N." / "model.layers.N.".
struct LayerName {
    const char* gguf;
    const char* hf;
};
constexpr LayerName k_layer_names[] = {
    {"attn_norm.weight", "input_layernorm.weight"},
    {"attn_q.weight", "self_attn.q_proj.weight"},
    {"attn_k.weight", "self_attn.k_proj.weight"},
    {"attn_v.weight", "self_attn.v_proj.weight"},
    {"attn_q.bias", "self_attn.q_proj.bias"},
    {"attn_k.bias", "self_attn.k_proj.bias"},
    {"attn_v.bias", "self_attn.v_proj.bias"},
    {"attn_q_norm.weight", "self_attn.q_norm.weight"},
    {"attn_k_norm.weight", "self_attn.k_norm.weight"},
    {"attn_output.weight", "self_attn.o_proj.weight"},
    {"attn_output.bias", "self_attn.o_proj.bias"},
    {"ffn_norm.weight", "post_attention_layernorm.weight"},
    {"ffn_gate.weight", "mlp.gate_proj.weight"},
    {"ffn_up.weight", "mlp.up_proj.weight"},
    {"ffn_down.weight", "mlp.down_proj.weight"},
};

std::string arch_of(const GgufFile& f) {
    const std::string arch = f.need_string("general.architecture");
    for (const auto& a : k_archs)
        if (arch == a.gguf) return arch;
    throw unsupported(f.path(), "general.architecture is '" + arch + "'; rabbit reads GGUF models of llama (Mixtral too), qwen2, qwen3, qwen2moe "
                                    "and qwen3moe");
}

const char* hf_arch_of(const std::string& arch, const std::optional<GgufMoe>& moe) {
    if (moe && moe->mixtral) return "MixtralForCausalLM";
    for (const auto& a : k_archs)
        if (arch == a.gguf) return a.hf;
    return "";
}

uint64_t positive(const GgufFile& f, const std::string& key, std::optional<int64_t> v) {
    if (!v) throw bad_input(f.path(), "has no metadata '" + key + "'");
    if (*v <= 0 || *v > int64_t(UINT32_MAX)) throw bad_input(f.path(), "metadata '" + key + "' is " + std::to_string(*v) + "; expected a positive count");
    return uint64_t(*v);
}

// rope_freqs.weight, llama.cpp's divisors of the RoPE frequencies: F32, one per pair.
std::vector<float> read_rope_factors(const GgufFile& part, const GgufTensorInfo& t, uint64_t head_dim) {
    if (t.dtype != DType::f32 || t.shape.size() != 1 || t.shape[0] != head_dim / 2)
        throw bad_input(part.path(), "tensor 'rope_freqs.weight' is not F32 of " + std::to_string(head_dim / 2) +
                                         " values (one per RoPE frequency)");
    std::vector<float> v(size_t(head_dim / 2));
    InputFile(part.path()).read_at(v.data(), v.size() * sizeof(float), t.offset);
    return v;
}

// The Llama 3 scaling behind rope_freqs.weight, as config.json's rope_scaling says it.
void write_llama3_rope(JsonWriter& w, const GgufSet& set, const std::string& arch, uint64_t head_dim, double theta) {
    const auto [part, t] = set.find_tensor("rope_freqs.weight");
    const GgufFile& f = set.first();
    const std::vector<float> factors = read_rope_factors(*part, *t, head_dim);
    const auto ctx = f.get_int(arch + ".context_length").value_or(0);
    const auto s = llama3_scaling_of_factors(factors, theta, head_dim, ctx > 0 ? uint64_t(ctx) : 0);
    if (!s)
        throw unsupported(part->path(), "holds rope_freqs.weight whose factors are not Llama 3 RoPE scaling of any "
                                        "(factor, low_freq_factor, high_freq_factor, original_max_position_embeddings)");
    if (s->type == RopeScaling::Type::none) return;
    w.key("rope_scaling").begin_object().member("rope_type", "llama3").member("factor", s->factor);
    w.member("low_freq_factor", s->low_freq_factor).member("high_freq_factor", s->high_freq_factor);
    w.member("original_max_position_embeddings", s->original_max_position_embeddings).end_object();
}

// YaRN as llama.cpp's converter writes it from config.json (Qwen2.5/Qwen3's model cards):
// type, factor and original context, and beta_fast, beta_slow and attention_factor when the
// config gave them. Keys that have no transformers counterpart rabbit computes are refused.
void write_yarn_rope(JsonWriter& w, const GgufFile& f, const std::string& arch) {
    const std::string k = arch + ".rope.scaling.";
    for (const char* other : {"yarn_ext_factor", "yarn_log_multiplier", "attn_factor"})
        if (f.find(k + other))
            throw unsupported(f.path(), "has " + k + other + "; rabbit runs YaRN with factor, original_context_length, "
                                        "yarn_beta_fast, yarn_beta_slow and yarn_attn_factor only");
    const auto factor = f.get_float(k + "factor");
    const auto original = f.get_int(k + "original_context_length");
    if (!factor || !original || *original <= 0)
        throw bad_input(f.path(), k + "type is yarn; expected " + k + "factor and a positive " + k + "original_context_length");
    w.key("rope_scaling").begin_object().member("rope_type", "yarn").member("factor", *factor);
    w.member("original_max_position_embeddings", *original);
    if (auto b = f.get_float(k + "yarn_beta_fast")) w.member("beta_fast", *b);
    if (auto b = f.get_float(k + "yarn_beta_slow")) w.member("beta_slow", *b);
    if (auto a = f.get_float(k + "yarn_attn_factor")) w.member("attention_factor", *a);
    w.end_object();
}

// The RoPE keys: the base, and the scaling rabbit runs from a GGUF: linear, YaRN, or Llama
// 3's, which llama.cpp's converter stores as the tensor rope_freqs.weight.
void write_rope(JsonWriter& w, const GgufSet& set, const std::string& arch, uint64_t head_dim) {
    const GgufFile& f = set.first();
    const double theta = f.get_float(arch + ".rope.freq_base").value_or(10000.0);
    w.member("rope_theta", theta);
    if (auto dims = f.get_int(arch + ".rope.dimension_count"); dims && uint64_t(*dims) != head_dim)
        throw unsupported(f.path(), arch + ".rope.dimension_count is " + std::to_string(*dims) + ", not the head size " +
                                        std::to_string(head_dim) + ": partial rotary embeddings are not supported");
    const std::string type = f.get_string(arch + ".rope.scaling.type").value_or("none");
    const bool freqs = set.find_tensor("rope_freqs.weight").second != nullptr;
    if (freqs && type != "none")
        throw unsupported(f.path(), "has both rope_freqs.weight and " + arch + ".rope.scaling.type '" + type +
                                        "'; rabbit runs one RoPE scaling");
    if (freqs) {
        write_llama3_rope(w, set, arch, head_dim, theta);
    } else if (type == "linear") {
        const double factor = f.get_float(arch + ".rope.scaling.factor").value_or(1.0);
        w.key("rope_scaling").begin_object().member("rope_type", "linear").member("factor", factor).end_object();
    } else if (type == "yarn") {
        write_yarn_rope(w, f, arch);
    } else if (type != "none") {
        throw unsupported(f.path(), arch + ".rope.scaling.type is '" + type +
                                        "'; rabbit runs GGUFs without RoPE scaling, with linear, YaRN or Llama 3's");
    }
}

void write_special_tokens(JsonWriter& w, const GgufFile& f) {
    if (auto b = f.get_int("tokenizer.ggml.bos_token_id")) w.member("bos_token_id", *b);
    auto eos = f.get_int("tokenizer.ggml.eos_token_id");
    auto eot = f.get_int("tokenizer.ggml.eot_token_id");
    if (eos || eot) {
        w.key("eos_token_id").begin_array(true);
        if (eos) w.value(*eos);
        if (eot && eot != eos) w.value(*eot);
        w.end_array();
    }
}

} // namespace

namespace {

// "blk.7.attn_q.weight" -> {"7", "attn_q.weight"}; false for a name of no layer.
bool split_block_name(const std::string& name, std::string& layer, std::string& rest) {
    if (name.rfind("blk.", 0) != 0) return false;
    const size_t dot = name.find('.', 4);
    if (dot == std::string::npos || dot == 4 || dot - 4 > 6) return false;
    for (size_t i = 4; i < dot; ++i)
        if (name[i] < '0' || name[i] > '9') return false;
    layer = name.substr(4, dot - 4);
    rest = name.substr(dot + 1);
    return layer.size() == 1 || layer[0] != '0';
}

} // namespace

std::string hf_name_of_gguf_tensor(const std::string& name) {
    if (name == "token_embd.weight") return "model.embed_tokens.weight";
    if (name == "output_norm.weight") return "model.norm.weight";
    if (name == "output.weight") return "lm_head.weight";
    std::string layer, rest;
    if (!split_block_name(name, layer, rest)) return "";
    for (const auto& n : k_layer_names)
        if (rest == n.gguf) return "model.layers." + layer + "." + n.hf;
    return "";
}

std::string gguf_config_json(const GgufSet& set) {
    const GgufFile& f = set.first();
    const std::string arch = arch_of(f);
    const std::string a = arch + ".";
    const uint64_t hidden = positive(f, a + "embedding_length", f.get_int(a + "embedding_length"));
    const uint64_t heads = positive(f, a + "attention.head_count", f.get_int(a + "attention.head_count"));
    const uint64_t kv_heads = positive(f, a + "attention.head_count_kv",
                                       f.get_int(a + "attention.head_count_kv").value_or(int64_t(heads)));
    const uint64_t head_dim = positive(f, a + "attention.key_length",
                                       f.get_int(a + "attention.key_length").value_or(int64_t(hidden / heads)));
    if (auto vd = f.get_int(a + "attention.value_length"); vd && uint64_t(*vd) != head_dim)
        throw unsupported(f.path(), a + "attention.value_length " + std::to_string(*vd) + " differs from key_length " +
                                        std::to_string(head_dim) + ", which rabbit does not run");
    // A tied model converted from a checkpoint that stores only lm_head.weight (tinystories)
    // has output.weight and no token_embd.weight: the embedding is read from it.
    const GgufTensorInfo* embd = set.find_tensor("token_embd.weight").second;
    const GgufTensorInfo* output = set.find_tensor("output.weight").second;
    const GgufTensorInfo* vocab_rows = embd ? embd : output;
    if (!vocab_rows || vocab_rows->shape.size() != 2) throw bad_input(f.path(), "has no 2-D tensor 'token_embd.weight'");

    const uint64_t layers = positive(f, a + "block_count", f.get_int(a + "block_count"));
    const std::optional<GgufMoe> moe = read_gguf_moe(set, arch, layers);
    // A MoE model without dense layers needs no dense width: the converter may leave it out.
    const auto ffn = f.get_int(a + "feed_forward_length");
    const bool all_sparse = moe && moe->dense_layers.empty();

    JsonWriter w;
    w.begin_object();
    w.key("architectures").begin_array(true).value(hf_arch_of(arch, moe)).end_array();
    w.member("hidden_size", hidden);
    w.member("intermediate_size", !ffn && all_sparse ? moe->expert_ffn : positive(f, a + "feed_forward_length", ffn));
    w.member("num_hidden_layers", layers);
    w.member("num_attention_heads", heads).member("num_key_value_heads", kv_heads).member("head_dim", head_dim);
    w.member("vocab_size", vocab_rows->shape[0]);
    if (auto ctx = f.get_int(a + "context_length"); ctx && *ctx > 0) w.member("max_position_embeddings", *ctx);
    if (auto eps = f.get_float(a + "attention.layer_norm_rms_epsilon")) w.member("rms_norm_eps", *eps);
    write_rope(w, set, arch, head_dim);
    w.member("tie_word_embeddings", !embd || !output);
    const bool qkv_bias = set.find_tensor("blk.0.attn_q.bias").second != nullptr;
    if (arch == "qwen2moe") w.member("qkv_bias", qkv_bias);
    else if (arch != "qwen2" && !(moe && moe->mixtral)) w.member("attention_bias", qkv_bias);
    if (moe) write_gguf_moe_config(w, *moe);
    write_special_tokens(w, f);
    w.end_object();
    return w.str();
}

namespace {

std::optional<bool> opt_bool(const GgufFile& f, const std::string& key) { return f.get_bool(key); }

// tokenizer.ggml.* as gguf_tokenizer.h takes it.
GgufVocab read_vocab(const GgufFile& f) {
    GgufVocab v;
    v.model = f.get_string("tokenizer.ggml.model").value_or("");
    v.pre = f.get_string("tokenizer.ggml.pre").value_or("");
    v.tokens = f.get_strings("tokenizer.ggml.tokens").value_or(std::vector<std::string>{});
    if (auto s = f.get_floats("tokenizer.ggml.scores")) v.scores.assign(s->begin(), s->end());
    if (auto t = f.get_ints("tokenizer.ggml.token_type"))
        for (int64_t x : *t) v.token_type.push_back(int32_t(x));
    v.merges = f.get_strings("tokenizer.ggml.merges").value_or(std::vector<std::string>{});
    v.bos = f.get_int("tokenizer.ggml.bos_token_id");
    v.eos = f.get_int("tokenizer.ggml.eos_token_id");
    v.unk = f.get_int("tokenizer.ggml.unknown_token_id");
    v.pad = f.get_int("tokenizer.ggml.padding_token_id");
    v.eot = f.get_int("tokenizer.ggml.eot_token_id");
    v.add_bos = opt_bool(f, "tokenizer.ggml.add_bos_token");
    v.add_eos = opt_bool(f, "tokenizer.ggml.add_eos_token");
    v.add_space_prefix = opt_bool(f, "tokenizer.ggml.add_space_prefix");
    v.chat_template = f.get_string("tokenizer.chat_template");
    return v;
}

// tokenizer.json, tokenizer_config.json and generation_config.json from the metadata. A GGUF
// whose tokenizer rabbit cannot rebuild still splits (inspect and bench need none), as a
// Hugging Face directory without tokenizer.json does.
void add_tokenizer_files(HfCheckpoint& ck, const GgufFile& f) {
    if (!f.find("tokenizer.ggml.model")) {
        spdlog::warn("{} has no tokenizer (tokenizer.ggml.model): the split can be inspected and benchmarked, but "
                     "`rabbit run` will have no tokenizer for text", f.path());
        return;
    }
    TokenizerFiles files;
    try {
        files = tokenizer_files_from_gguf(read_vocab(f), f.path());
    } catch (const Error& e) {
        if (e.code() != ExitCode::unsupported) throw;
        spdlog::warn("{}; the split will have no tokenizer for text", e.what());
        return;
    }
    if (!files.tokenizer_json.empty()) ck.made_files.emplace_back("tokenizer.json", files.tokenizer_json);
    if (!files.tokenizer_config_json.empty()) ck.made_files.emplace_back("tokenizer_config.json", files.tokenizer_config_json);
    if (!files.generation_config_json.empty()) ck.generation_text = files.generation_config_json;
}

// "DIR/NAME.gguf" -> {"DIR", "NAME.gguf"}; a bare name lies in ".".
std::pair<std::string, std::string> split_path(const std::string& path) {
    const size_t slash = path.find_last_of('/');
    if (slash == std::string::npos) return {".", path};
    return {slash == 0 ? "/" : path.substr(0, slash), path.substr(slash + 1)};
}

// llama.cpp's converter reorders the rows of a llama model's q and k (and their biases) per
// head, from Hugging Face's rotate-half order to interleaved pairs; this many heads.
uint32_t permuted_heads_of(const std::string& hf, const std::string& arch, uint32_t heads, uint32_t kv_heads) {
    if (arch != "llama") return 0;
    if (ends_with(hf, "self_attn.q_proj.weight") || ends_with(hf, "self_attn.q_proj.bias")) return heads;
    if (ends_with(hf, "self_attn.k_proj.weight") || ends_with(hf, "self_attn.k_proj.bias")) return kv_heads;
    return 0;
}

// What add_part needs of the whole model.
struct ModelShape {
    std::string arch;
    uint32_t heads = 0, kv_heads = 0;
    uint64_t hidden = 0;
    std::optional<GgufMoe> moe;
};

// A MoE tensor (router, shared expert, stacked experts), each under its Hugging Face name(s).
bool add_moe_tensor(HfCheckpoint& ck, const GgufFile& part, const GgufTensorInfo& t, uint32_t shard,
                    const ModelShape& m) {
    std::string layer, rest;
    if (!m.moe || !split_block_name(t.name, layer, rest)) return false;
    std::vector<SourceTensor> out;
    if (!add_gguf_moe_tensor(part, t, layer, rest, *m.moe, m.hidden, shard, out)) return false;
    for (SourceTensor& st : out) {
        const std::string name = st.name;
        if (!ck.tensors.emplace(name, std::move(st)).second)
            throw bad_input(part.path(), "holds tensor '" + t.name + "' twice");
    }
    return true;
}

// Every tensor of one part, by its Hugging Face name.
void add_part(HfCheckpoint& ck, const GgufFile& part, uint32_t shard, const ModelShape& m) {
    const std::string& arch = m.arch;
    const uint32_t heads = m.heads, kv_heads = m.kv_heads;
    for (const GgufTensorInfo& t : part.tensors()) {
        if (t.name == "rope_freqs.weight") continue; // read as the config's rope_scaling
        if (add_moe_tensor(ck, part, t, shard, m)) continue;
        const std::string hf = hf_name_of_gguf_tensor(t.name);
        if (hf.empty())
            throw unsupported(part.path(), "holds tensor '" + t.name + "', which is not part of a " + arch +
                                               " model rabbit runs");
        SourceTensor st{hf, t.dtype, t.shape, shard, t.offset, t.nbytes, permuted_heads_of(hf, arch, heads, kv_heads)};
        if (st.permuted_heads && (st.shape[0] % (2ull * st.permuted_heads) != 0))
            throw bad_input(part.path(), "tensor '" + t.name + "' has " + std::to_string(st.shape[0]) +
                                             " rows, not an even count per head for " + std::to_string(st.permuted_heads) +
                                             " heads");
        if (!ck.tensors.emplace(hf, st).second)
            throw bad_input(part.path(), "holds tensor '" + t.name + "' twice");
    }
}

} // namespace

HfCheckpoint open_gguf_checkpoint(const std::string& path, bool with_tokenizer) {
    const GgufSet set = open_gguf_set(path);
    const GgufFile& f = set.first();
    const std::string arch = arch_of(f);
    HfCheckpoint ck;
    ck.gguf_file = f.path();
    ck.dir = split_path(f.path()).first;
    ck.config_text = gguf_config_json(set);
    ModelShape m;
    m.arch = arch;
    m.heads = uint32_t(f.need_int(arch + ".attention.head_count"));
    m.kv_heads = uint32_t(f.get_int(arch + ".attention.head_count_kv").value_or(m.heads));
    m.hidden = uint64_t(f.need_int(arch + ".embedding_length"));
    m.moe = read_gguf_moe(set, arch, uint64_t(f.need_int(arch + ".block_count")));
    for (uint32_t si = 0; si < set.parts.size(); ++si) {
        const GgufFile& part = set.parts[si];
        ck.shards.push_back({split_path(part.path()).second, part.file_size(), part.header_hash(), true});
        add_part(ck, part, si, m);
    }
    if (with_tokenizer) add_tokenizer_files(ck, f);
    return ck;
}

GgufSummary summarize_gguf(const GgufSet& set) {
    GgufSummary s;
    const GgufFile& f = set.first();
    s.architecture = f.get_string("general.architecture").value_or("");
    s.name = f.get_string("general.name").value_or("");
    s.version = f.version();
    s.parts = set.parts.size();
    for (const auto& part : set.parts)
        for (const auto& t : part.tensors()) {
            auto& use = s.types[ggml_type_name(t.ggml_type)];
            ++use.tensors;
            use.bytes += t.nbytes;
            ++s.tensors;
        }
    return s;
}

} // namespace rabbit
