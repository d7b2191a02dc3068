// SPDX-License-Identifier: Apache-2.0
#include "format/gguf_moe.h"

#include "common/error.h"

namespace rabbit {

namespace {

// llama.cpp's LLAMA_EXPERT_GATING_FUNC_TYPE_SOFTMAX, the only router rabbit runs.
constexpr int64_t k_gating_softmax = 1;

// The bounds ModelConfig::validate puts on the counts, checked here already so that a file's
// absurd count never sizes a loop or a table.
constexpr int64_t k_max_experts = 4096, k_max_width = 1 << 20;
constexpr uint64_t k_max_layers = 4096;

uint32_t count_key(const GgufFile& f, const std::string& key, bool required, uint32_t fallback = 0,
                   int64_t most = k_max_width) {
    const auto v = f.get_int(key);
    if (!v) {
        if (required) throw bad_input(f.path(), "has no metadata '" + key + "'; a MoE model needs it");
        return fallback;
    }
    if (*v <= 0 || *v > most)
        throw bad_input(f.path(), "metadata '" + key + "' is " + std::to_string(*v) + "; expected a count of 1.." +
                                      std::to_string(most));
    return uint32_t(*v);
}

// The routing keys llama.cpp honours that would change what rabbit computes: refused unless
// they say what rabbit does (softmax over the router, weights unscaled, one shared expert).
void check_routing(const GgufFile& f, const std::string& a) {
    if (auto g = f.get_int(a + "expert_gating_func"); g && *g != k_gating_softmax)
        throw unsupported(f.path(), a + "expert_gating_func is " + std::to_string(*g) +
                                        "; rabbit routes with a softmax (1) only");
    if (auto s = f.get_float(a + "expert_weights_scale"); s && *s != 1.0)
        throw unsupported(f.path(), a + "expert_weights_scale is " + std::to_string(*s) +
                                        "; rabbit runs unscaled expert weights only");
    if (auto n = f.get_int(a + "expert_shared_count"); n && *n > 1)
        throw unsupported(f.path(), a + "expert_shared_count is " + std::to_string(*n) +
                                        "; rabbit runs one shared expert at most");
}

bool has_stacked_experts(const GgufSet& set, uint64_t layer) {
    const std::string b = "blk." + std::to_string(layer) + ".";
    return set.find_tensor(b + "ffn_gate_exps.weight").second || set.find_tensor(b + "ffn_gate_up_exps.weight").second;
}

struct Stacked {
    const char* gguf;    // after "blk.N."
    const char* qwen;    // after "experts.E."
    const char* mixtral; // Mixtral's w1 is the gate, w3 the up projection, w2 the down projection
    bool down;           // ne = [expert ffn, hidden, n], not [hidden, expert ffn, n]
    bool fused;          // ne = [hidden, 2 * expert ffn, n]: each expert's gate rows, then its up rows
};
constexpr Stacked k_stacked[] = {{"ffn_gate_exps.weight", "gate_proj.weight", "w1.weight", false, false},
                                 {"ffn_up_exps.weight", "up_proj.weight", "w3.weight", false, false},
                                 {"ffn_down_exps.weight", "down_proj.weight", "w2.weight", true, false},
                                 // the converter's --fuse-gate-up-exps
                                 {"ffn_gate_up_exps.weight", "gate_proj.weight", "w1.weight", false, true}};

struct Single {
    const char* gguf; // after "blk.N."
    const char* hf;   // after "mlp." (Mixtral: "block_sparse_moe.")
};
constexpr Single k_single[] = {{"ffn_gate_inp.weight", "gate.weight"},
                               {"ffn_gate_shexp.weight", "shared_expert.gate_proj.weight"},
                               {"ffn_up_shexp.weight", "shared_expert.up_proj.weight"},
                               {"ffn_down_shexp.weight", "shared_expert.down_proj.weight"},
                               {"ffn_gate_inp_shexp.weight", "shared_expert_gate.weight"}};

std::string ne_text(const std::vector<uint64_t>& ne) {
    std::string s = "[";
    for (size_t i = 0; i < ne.size(); ++i) s += (i ? ", " : "") + std::to_string(ne[i]);
    return s + "]";
}

// One expert's slice of a stacked tensor [in, out, n]: its `out` rows of `in` values, whole
// rows of whole blocks for a quantized type, at offset + e * (nbytes / n). A fused gate_up
// slice is two source tensors, its first half the gate, its second the up projection.
void add_experts(const GgufFile& part, const GgufTensorInfo& t, const Stacked& s, const std::string& prefix,
                 const GgufMoe& m, uint64_t hidden, uint32_t shard, std::vector<SourceTensor>& out) {
    const uint64_t in = s.down ? m.expert_ffn : hidden, rows = s.down ? hidden : m.expert_ffn;
    const std::vector<uint64_t> want = {in, s.fused ? 2 * rows : rows, m.experts};
    if (t.ne != want)
        throw bad_input(part.path(), "tensor '" + t.name + "' has ne " + ne_text(t.ne) + "; expected " + ne_text(want) +
                                         (s.down ? " (expert ffn, hidden, experts)" : " (hidden, expert ffn, experts)"));
    if (t.nbytes % m.experts != 0)
        throw bad_input(part.path(), "tensor '" + t.name + "' has " + std::to_string(t.nbytes) +
                                         " bytes, not a whole number per expert for " + std::to_string(m.experts));
    const uint64_t slice = t.nbytes / m.experts;
    for (uint32_t e = 0; e < m.experts; ++e) {
        const std::string x = prefix + "experts." + std::to_string(e) + ".";
        const uint64_t at = t.offset + e * slice;
        if (!s.fused) {
            out.push_back({x + (m.mixtral ? s.mixtral : s.qwen), t.dtype, {rows, in}, shard, at, slice, 0});
            continue;
        }
        out.push_back({x + (m.mixtral ? "w1.weight" : "gate_proj.weight"), t.dtype, {rows, in}, shard, at, slice / 2, 0});
        out.push_back({x + (m.mixtral ? "w3.weight" : "up_proj.weight"), t.dtype, {rows, in}, shard, at + slice / 2, slice / 2, 0});
    }
}

} // namespace

bool is_gguf_moe_arch(const std::string& arch) { return arch == "qwen2moe" || arch == "qwen3moe"; }

std::optional<GgufMoe> read_gguf_moe(const GgufSet& set, const std::string& arch, uint64_t layers) {
    const GgufFile& f = set.first();
    const std::string a = arch + ".";
    // A dense llama has no expert_count, or (some converters) one of 0.
    const bool mixtral = arch == "llama" && f.get_int(a + "expert_count").value_or(0) > 0;
    if (!mixtral && !is_gguf_moe_arch(arch)) {
        if (has_stacked_experts(set, 0))
            throw bad_input(f.path(), "holds stacked experts in layer 0 but metadata '" + a +
                                          "expert_count' is absent or 0");
        return std::nullopt;
    }
    if (layers > k_max_layers)
        throw bad_input(f.path(), "metadata '" + a + "block_count' is " + std::to_string(layers) + "; expected 1.." +
                                      std::to_string(k_max_layers));
    GgufMoe m;
    m.mixtral = mixtral;
    m.experts = count_key(f, a + "expert_count", true, 0, k_max_experts);
    m.experts_per_tok = count_key(f, a + "expert_used_count", true, 0, k_max_experts);
    if (m.experts_per_tok > m.experts)
        throw bad_input(f.path(), "metadata '" + a + "expert_used_count' is " + std::to_string(m.experts_per_tok) +
                                      ", more than the " + std::to_string(m.experts) + " of " + a + "expert_count");
    // Mixtral's converter records the experts' width as the model's feed_forward_length.
    m.expert_ffn = count_key(f, a + "expert_feed_forward_length", !mixtral,
                             mixtral ? count_key(f, a + "feed_forward_length", true) : 0);
    m.shared_ffn = count_key(f, a + "expert_shared_feed_forward_length", false);
    if (arch == "qwen2moe" && m.shared_ffn == 0 && set.find_tensor("blk.0.ffn_gate_shexp.weight").second)
        throw bad_input(f.path(), "holds a shared expert but no metadata '" + a + "expert_shared_feed_forward_length'");
    check_routing(f, a);
    // llama.cpp's graphs renormalise the top k for qwen3moe and Mixtral, not for qwen2moe; its
    // converters record no key for it.
    m.norm_topk_prob = f.get_bool(a + "expert_weights_norm").value_or(arch != "qwen2moe");
    if (mixtral && !m.norm_topk_prob)
        throw unsupported(f.path(), a + "expert_weights_norm is false; Mixtral always renormalises its top k");
    for (uint64_t l = 0; l < layers; ++l)
        if (!has_stacked_experts(set, l)) m.dense_layers.push_back(uint32_t(l));
    if (mixtral && !m.dense_layers.empty())
        throw unsupported(f.path(), "layer " + std::to_string(m.dense_layers[0]) +
                                        " has no stacked experts; rabbit runs Mixtral with every layer a MoE layer");
    return m;
}

void write_gguf_moe_config(JsonWriter& w, const GgufMoe& m) {
    if (m.mixtral) {
        w.member("num_local_experts", m.experts).member("num_experts_per_tok", m.experts_per_tok);
        return;
    }
    w.member("num_experts", m.experts).member("num_experts_per_tok", m.experts_per_tok);
    w.member("moe_intermediate_size", m.expert_ffn).member("shared_expert_intermediate_size", m.shared_ffn);
    w.member("norm_topk_prob", m.norm_topk_prob).member("decoder_sparse_step", 1);
    w.key("mlp_only_layers").begin_array(true);
    for (uint32_t l : m.dense_layers) w.value(l);
    w.end_array();
}

bool add_gguf_moe_tensor(const GgufFile& part, const GgufTensorInfo& t, const std::string& layer, const std::string& rest,
                         const GgufMoe& m, uint64_t hidden, uint32_t shard, std::vector<SourceTensor>& out) {
    const std::string prefix = "model.layers." + layer + (m.mixtral ? ".block_sparse_moe." : ".mlp.");
    for (const Stacked& s : k_stacked)
        if (rest == s.gguf) {
            add_experts(part, t, s, prefix, m, hidden, shard, out);
            return true;
        }
    for (const Single& s : k_single)
        if (rest == s.gguf) {
            std::vector<uint64_t> shape = t.shape;
            // llama-quantize writes the shared expert's gate [hidden, 1] as [hidden].
            if (rest == "ffn_gate_inp_shexp.weight" && shape.size() == 1) shape.insert(shape.begin(), 1);
            out.push_back({prefix + s.hf, t.dtype, shape, shard, t.offset, t.nbytes, 0});
            return true;
        }
    return false;
}

} // namespace rabbit
