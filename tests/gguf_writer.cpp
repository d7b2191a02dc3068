// SPDX-License-Identifier: Apache-2.0
#include "gguf_writer.h"

#include "common/file_io.h"
#include "common/json_writer.h"
#include "format/safetensors.h"
#include "format/split_model.h"
#include "helpers.h"
#include "model/config.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <cstdio>
#include <cstring>
#include <stdexcept>

namespace rabbit::test {

namespace {

size_t scalar_bytes(GgufType t) {
    switch (t) {
    case GgufType::u8: case GgufType::i8: case GgufType::boolean: return 1;
    case GgufType::u16: case GgufType::i16: return 2;
    case GgufType::u32: case GgufType::i32: case GgufType::f32: return 4;
    case GgufType::u64: case GgufType::i64: case GgufType::f64: return 8;
    default: return 0;
    }
}

void put(std::string& out, uint64_t v, size_t n) {
    for (size_t i = 0; i < n; ++i) out.push_back(char((v >> (8 * i)) & 0xff));
}

void put_string(std::string& out, const std::string& s) {
    put(out, s.size(), 8);
    out += s;
}

void put_value(std::string& out, const GgufValue& v) {
    if (v.type == GgufType::string) {
        put_string(out, v.str);
    } else if (v.type == GgufType::array) {
        put(out, uint64_t(v.elem), 4);
        put(out, v.count, 8);
        if (scalar_bytes(v.elem)) out += v.raw;
        else
            for (const auto& item : v.items) put_value(out, item);
    } else {
        put(out, v.bits, scalar_bytes(v.type));
    }
}

uint64_t align_up(uint64_t x, uint64_t a) { return (x + a - 1) / a * a; }

} // namespace

GgufValue gguf_scalar(GgufType t, uint64_t bits) {
    GgufValue v;
    v.type = t;
    v.bits = bits;
    return v;
}

GgufValue gguf_string(const std::string& s) {
    GgufValue v;
    v.type = GgufType::string;
    v.str = s;
    return v;
}

GgufValue gguf_array(GgufType elem, const std::vector<GgufValue>& items) {
    GgufValue v;
    v.type = GgufType::array;
    v.elem = elem;
    v.count = items.size();
    if (scalar_bytes(elem))
        for (const auto& i : items) put(v.raw, i.bits, scalar_bytes(elem));
    else
        v.items = items;
    return v;
}

GgufWriter& GgufWriter::value(const std::string& key, const GgufValue& v) {
    kv.emplace_back(key, v);
    return *this;
}
GgufWriter& GgufWriter::u32(const std::string& key, uint32_t v) { return value(key, gguf_scalar(GgufType::u32, v)); }
GgufWriter& GgufWriter::i32(const std::string& key, int32_t v) {
    return value(key, gguf_scalar(GgufType::i32, uint32_t(v)));
}
GgufWriter& GgufWriter::u64(const std::string& key, uint64_t v) { return value(key, gguf_scalar(GgufType::u64, v)); }
GgufWriter& GgufWriter::f32(const std::string& key, float v) {
    uint32_t b;
    std::memcpy(&b, &v, 4);
    return value(key, gguf_scalar(GgufType::f32, b));
}
GgufWriter& GgufWriter::boolean(const std::string& key, bool v) { return value(key, gguf_scalar(GgufType::boolean, v)); }
GgufWriter& GgufWriter::str(const std::string& key, const std::string& v) { return value(key, gguf_string(v)); }
GgufWriter& GgufWriter::strings(const std::string& key, const std::vector<std::string>& v) {
    std::vector<GgufValue> items;
    for (const auto& s : v) items.push_back(gguf_string(s));
    return value(key, gguf_array(GgufType::string, items));
}

GgufWriter& GgufWriter::tensor(const std::string& name, DType t, std::vector<uint64_t> ne, std::string data) {
    tensors.push_back({name, dtype_ggml_id(t), std::move(ne), std::move(data)});
    return *this;
}

std::string GgufWriter::bytes() const {
    auto all_kv = kv;
    bool has_alignment = false;
    for (const auto& [k, v] : kv) has_alignment |= k == "general.alignment";
    if (alignment != 32 && !has_alignment) all_kv.emplace_back("general.alignment", gguf_scalar(GgufType::u32, alignment));
    std::string out = "GGUF";
    put(out, version, 4);
    put(out, tensors.size(), 8);
    put(out, all_kv.size(), 8);
    for (const auto& [k, v] : all_kv) {
        put_string(out, k);
        put(out, uint64_t(v.type), 4);
        put_value(out, v);
    }
    uint64_t offset = 0;
    for (const auto& t : tensors) {
        put_string(out, t.name);
        put(out, t.ne.size(), 4);
        for (uint64_t d : t.ne) put(out, d, 8);
        put(out, t.ggml_type, 4);
        put(out, offset, 8);
        offset = align_up(offset + t.data.size(), alignment);
    }
    out.resize(size_t(align_up(out.size(), alignment)), '\0');
    for (const auto& t : tensors) {
        out += t.data;
        out.resize(size_t(align_up(out.size(), alignment)), '\0');
    }
    return out;
}

void GgufWriter::write(const std::string& path) const { write_file(path, bytes()); }

uint64_t gguf_row_of_hf_row(uint64_t hf_row, uint64_t head_dim) {
    const uint64_t h = hf_row / head_dim, r = hf_row % head_dim, half = head_dim / 2;
    const uint64_t s = r / half, i = r % half;
    return h * head_dim + 2 * i + s;
}

namespace {

// The tensors of a model, GGUF name first, as llama.cpp's converter names them.
std::vector<std::pair<std::string, std::string>> tensor_names(const ModelConfig& c) {
    std::vector<std::pair<std::string, std::string>> n = {{"token_embd.weight", "model.embed_tokens.weight"}};
    const std::pair<const char*, const char*> layer[] = {
        {"attn_norm.weight", "input_layernorm.weight"},     {"attn_q.weight", "self_attn.q_proj.weight"},
        {"attn_k.weight", "self_attn.k_proj.weight"},       {"attn_v.weight", "self_attn.v_proj.weight"},
        {"attn_q.bias", "self_attn.q_proj.bias"},           {"attn_k.bias", "self_attn.k_proj.bias"},
        {"attn_v.bias", "self_attn.v_proj.bias"},           {"attn_q_norm.weight", "self_attn.q_norm.weight"},
        {"attn_k_norm.weight", "self_attn.k_norm.weight"},  {"attn_output.weight", "self_attn.o_proj.weight"},
        {"ffn_norm.weight", "post_attention_layernorm.weight"}, {"ffn_gate.weight", "mlp.gate_proj.weight"},
        {"ffn_up.weight", "mlp.up_proj.weight"},            {"ffn_down.weight", "mlp.down_proj.weight"},
    };
    for (uint32_t l = 0; l < c.num_layers; ++l)
        for (const auto& [g, h] : layer)
            n.emplace_back("blk." + std::to_string(l) + "." + g, "model.layers." + std::to_string(l) + "." + h);
    n.emplace_back("output_norm.weight", "model.norm.weight");
    if (!c.tie_word_embeddings) n.emplace_back("output.weight", "lm_head.weight");
    return n;
}

// Rows of a q or k tensor (a matrix or a bias) into GGUF order.
std::string permute_rows(const std::string& data, uint64_t rows, uint64_t heads) {
    const uint64_t row_bytes = data.size() / rows, head_dim = rows / heads;
    std::string out(data.size(), '\0');
    for (uint64_t r = 0; r < rows; ++r)
        std::memcpy(&out[gguf_row_of_hf_row(r, head_dim) * row_bytes], &data[r * row_bytes], row_bytes);
    return out;
}

// rope_freqs.weight of a llama3 rope_scaling, as llama.cpp's LlamaModel.generate_extra_tensors
// computes it (in f32, torch's pow as a double pow rounded), and no scaling metadata.
GgufWriterTensor rope_freqs(const ModelConfig& c) {
    const RopeScaling& s = c.rope_scaling;
    const size_t half = c.head_dim / 2;
    const float low_wavelen = float(double(s.original_max_position_embeddings) / s.low_freq_factor);
    const float high_wavelen = float(double(s.original_max_position_embeddings) / s.high_freq_factor);
    std::vector<float> f(half);
    for (size_t i = 0; i < half; ++i) {
        const float freq = 1.0f / float(std::pow(double(float(c.rope_theta)), double(float(2 * i) / float(c.head_dim))));
        const float wavelen = float(2.0 * M_PI) / freq;
        if (wavelen < high_wavelen) f[i] = 1.0f;
        else if (wavelen > low_wavelen) f[i] = float(s.factor);
        else {
            const float smooth = (float(s.original_max_position_embeddings) / wavelen - float(s.low_freq_factor)) /
                                 float(s.high_freq_factor - s.low_freq_factor);
            f[i] = 1.0f / ((1.0f - smooth) / float(s.factor) + smooth);
        }
    }
    std::string data(half * sizeof(float), '\0');
    std::memcpy(&data[0], f.data(), data.size());
    return {"rope_freqs.weight", dtype_ggml_id(DType::f32), {half}, std::move(data)};
}

void write_metadata(GgufWriter& w, const ModelConfig& c, const std::string& arch) {
    const std::string a = arch + ".";
    w.str("general.architecture", arch).str("general.name", "rabbit test model");
    w.u32(a + "block_count", c.num_layers).u32(a + "context_length", uint32_t(c.max_position_embeddings));
    w.u32(a + "embedding_length", c.hidden_size).u32(a + "feed_forward_length", c.intermediate_size);
    w.u32(a + "attention.head_count", c.num_heads).u32(a + "attention.head_count_kv", c.num_kv_heads);
    w.u32(a + "attention.key_length", c.head_dim).u32(a + "attention.value_length", c.head_dim);
    w.u32(a + "rope.dimension_count", c.head_dim);
    w.f32(a + "rope.freq_base", float(c.rope_theta)).f32(a + "attention.layer_norm_rms_epsilon", float(c.rms_norm_eps));
    if (const RopeScaling& s = c.rope_scaling; s.type == RopeScaling::Type::yarn) { // as the converter writes it
        w.str(a + "rope.scaling.type", "yarn").f32(a + "rope.scaling.factor", float(s.factor));
        w.u32(a + "rope.scaling.original_context_length", uint32_t(s.original_max_position_embeddings));
        if (s.beta_fast != 32) w.f32(a + "rope.scaling.yarn_beta_fast", float(s.beta_fast));
        if (s.beta_slow != 1) w.f32(a + "rope.scaling.yarn_beta_slow", float(s.beta_slow));
        if (s.attention_factor > 0) w.f32(a + "rope.scaling.yarn_attn_factor", float(s.attention_factor));
    }
    if (c.bos_token_id) w.u32("tokenizer.ggml.bos_token_id", uint32_t(*c.bos_token_id));
    if (!c.eos_token_ids.empty()) w.u32("tokenizer.ggml.eos_token_id", uint32_t(c.eos_token_ids[0]));
    if (c.eos_token_ids.size() > 1) w.u32("tokenizer.ggml.eot_token_id", uint32_t(c.eos_token_ids[1]));
}

} // namespace

std::string convert_hf_to_gguf(const std::string& hf_dir, const std::string& out_path, const GgufConversion& conv) {
    const std::string config_path = hf_dir + "/config.json";
    const std::string gen_path = hf_dir + "/generation_config.json";
    const ModelConfig c = ModelConfig::from_hf(read_file(config_path), config_path,
                                               exists(gen_path) ? std::optional<std::string>(read_file(gen_path)) : std::nullopt);
    const std::string arch = c.arch == Arch::qwen2 ? "qwen2" : c.arch == Arch::qwen3 ? "qwen3" : "llama";
    const std::string st_path = hf_dir + "/model.safetensors";
    InputFile st(st_path);
    const SafetensorsHeader h = read_safetensors_header(st);
    std::vector<GgufWriterTensor> all;
    for (const auto& [gname, hname] : tensor_names(c)) {
        const TensorEntry* e = h.find(hname);
        if (!e && hname == "model.embed_tokens.weight") e = h.find("lm_head.weight"); // tied, stored as lm_head
        if (!e) continue;                                                             // optional (biases, norms)
        std::string data(size_t(e->nbytes()), '\0');
        st.read_at(&data[0], data.size(), h.data_start + e->begin);
        if (arch == "llama" && (hname.find("q_proj") != std::string::npos || hname.find("k_proj") != std::string::npos))
            data = permute_rows(data, e->shape[0], hname.find("q_proj") != std::string::npos ? c.num_heads : c.num_kv_heads);
        DType t = e->dtype;
        if (!conv.keep_types && e->shape.size() == 2 && t != conv.matrix_type) {
            const uint64_t n = e->numel();
            std::string converted(size_t(n * dtype_size(conv.matrix_type)), '\0');
            convert_elements(data.data(), t, &converted[0], conv.matrix_type, size_t(n));
            data = std::move(converted);
            t = conv.matrix_type;
        }
        all.push_back({gname, dtype_ggml_id(t), std::vector<uint64_t>(e->shape.rbegin(), e->shape.rend()), std::move(data)});
    }
    if (c.rope_scaling.type == RopeScaling::Type::llama3) all.insert(all.begin(), rope_freqs(c));
    if (conv.parts <= 1) {
        GgufWriter w;
        write_metadata(w, c, arch);
        w.tensors = std::move(all);
        w.write(out_path);
        return out_path;
    }
    std::string first;
    for (uint32_t p = 0; p < conv.parts; ++p) {
        GgufWriter w;
        if (p == 0) write_metadata(w, c, arch);
        w.value("split.no", gguf_scalar(GgufType::u16, p)).value("split.count", gguf_scalar(GgufType::u16, conv.parts));
        w.i32("split.tensors.count", int32_t(all.size()));
        for (size_t i = all.size() * p / conv.parts; i < all.size() * (p + 1) / conv.parts; ++i) w.tensors.push_back(all[i]);
        char tail[32];
        std::snprintf(tail, sizeof tail, "-%05u-of-%05u.gguf", p + 1, conv.parts);
        const std::string path = out_path + tail;
        w.write(path);
        if (p == 0) first = path;
    }
    return first;
}

// eos: whether the stop tokens must agree too (llama.cpp's converter takes them from the
// tokenizer's files, which a random-weight model borrows from another).
void require_same_units(const std::string& a, const std::string& b, bool eos) {
    const SplitModel x = SplitModel::open(a), y = SplitModel::open(b);
    ModelConfig xc = x.config(), yc = y.config();
    if (!eos) {
        yc.eos_token_ids = xc.eos_token_ids;
        yc.bos_token_id = xc.bos_token_id;
    }
    JsonWriter cx, cy;
    xc.to_json(cx);
    yc.to_json(cy);
    REQUIRE(cx.str() == cy.str());
    REQUIRE(xc == yc);
    REQUIRE(x.manifest().dtype == y.manifest().dtype);
    REQUIRE(x.manifest().units.size() == y.manifest().units.size());
    for (size_t i = 0; i < x.manifest().units.size(); ++i) {
        INFO(x.manifest().units[i].layout.name);
        REQUIRE(x.manifest().units[i].layout == y.manifest().units[i].layout);
        REQUIRE(x.manifest().units[i].xxh3 == y.manifest().units[i].xxh3);
    }
}

} // namespace rabbit::test
