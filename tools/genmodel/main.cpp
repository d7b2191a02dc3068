// SPDX-License-Identifier: Apache-2.0
// rabbit-genmodel: writes a random-weight model in Hugging Face format. See genmodel.h.
#include "genmodel.h"

#include "cli/option_checks.h"
#include "common/error.h"
#include "common/json_read.h"
#include "model/rope_scaling.h"
#include "common/units.h"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <optional>

using namespace rabbit;

namespace {

struct GenArgs {
    std::string preset, out, dtype = "f32", tokenizer;
    std::optional<uint32_t> layers, hidden, inter, heads, kv_heads, head_dim, vocab, sliding_window, experts,
        experts_per_tok; // unset: the preset's
    std::optional<uint64_t> max_pos;
    std::optional<double> rope_theta;
    std::string rope_scaling; // JSON, as config.json's rope_scaling
    bool rope_parameters = false;
    uint32_t shards = 1;
    uint64_t seed = 0;
    bool tied = false, untied = false, alias = false, list = false, sparse = false;
    float mlp_scale = 1.0f;
};

void add_options(CLI::App& app, GenArgs& a) {
    app.add_flag("--list", a.list, "List the presets and exit");
    app.add_option("-p,--preset", a.preset, "A named configuration: tiny-qwen2, qwen2.5-7b, ... (--list)");
    app.add_option("-o,--out", a.out, "Output directory");
    positive(app.add_option("--layers", a.layers, "Number of decoder layers (fewer than the preset's for quick benchmarks)"));
    positive(app.add_option("--hidden", a.hidden, "hidden_size"));
    positive(app.add_option("--intermediate", a.inter, "intermediate_size"));
    positive(app.add_option("--heads", a.heads, "num_attention_heads"));
    positive(app.add_option("--kv-heads", a.kv_heads, "num_key_value_heads"));
    positive(app.add_option("--experts", a.experts, "Experts per MoE layer (MoE presets; default: the preset's)"));
    positive(app.add_option("--experts-per-tok", a.experts_per_tok, "Experts each token routes to (MoE presets)"));
    positive(app.add_option("--head-dim", a.head_dim, "head_dim (default: the preset's, or hidden / heads)"));
    positive(app.add_option("--vocab", a.vocab, "vocab_size"));
    positive(app.add_option("--max-pos", a.max_pos, "max_position_embeddings"));
    zero_or_positive(app.add_option("--sliding-window", a.sliding_window, "Mistral: attention window in tokens (0: none)"),
                     "no window");
    positive_real(app.add_option("--rope-theta", a.rope_theta, "rope_theta"));
    app.add_option("--rope-scaling", a.rope_scaling,
                   R"(RoPE scaling as config.json's rope_scaling object, e.g. '{"rope_type": "yarn", "factor": 4.0, )"
                   R"("original_max_position_embeddings": 32}' ('{"rope_type": "default"}': none))");
    app.add_flag("--rope-parameters", a.rope_parameters,
                 "Write RoPE under rope_parameters, rope_theta inside, as transformers 5 does (not rope_scaling)");
    app.add_option("--dtype", a.dtype, "Tensor dtype")->check(CLI::IsMember({"f32", "f16", "bf16"}));
    positive(app.add_option("--shards", a.shards, "Number of safetensors files (1: model.safetensors)"));
    non_negative(app.add_option("--seed", a.seed, "Random seed"));
    app.add_flag("--tied", a.tied, "Tie lm_head to the embedding");
    app.add_flag("--untied", a.untied, "Give lm_head its own matrix");
    app.add_flag("--alias-tied", a.alias, "Tied: store lm_head.weight once, with the embedding as a metadata alias");
    app.add_option("--tokenizer", a.tokenizer, "Copy tokenizer files from this directory");
    app.add_flag("--sparse", a.sparse, "Write headers only; the weights are holes that read as zeros (for planning tests)");
    positive_real(app.add_option("--mlp-scale", a.mlp_scale,
                                 "Multiply the gate and up projections by this (MLP activations grow by its square)"));
}

// The preset with the options' changes.
GenSpec spec_of(const GenArgs& a) {
    GenSpec spec = preset_spec(a.preset);
    ModelConfig& c = spec.config;
    const bool reshaped = a.hidden || a.heads;
    if (a.layers) c.num_layers = *a.layers;
    if (a.hidden) c.hidden_size = *a.hidden;
    if (a.inter) c.intermediate_size = *a.inter;
    if (a.inter && c.arch == Arch::mixtral) c.moe_intermediate_size = *a.inter; // Mixtral's experts are its MLPs
    if ((a.experts || a.experts_per_tok) && !c.is_moe())
        throw Error(ExitCode::usage, "--experts and --experts-per-tok are for mixture-of-experts presets");
    if (a.experts) c.num_experts = *a.experts;
    if (a.experts_per_tok) c.experts_per_tok = *a.experts_per_tok;
    if (a.heads) c.num_heads = *a.heads;
    if (a.kv_heads) c.num_kv_heads = *a.kv_heads;
    if (a.head_dim) c.head_dim = *a.head_dim;
    else if (reshaped && c.arch != Arch::qwen3) c.head_dim = c.hidden_size / c.num_heads;
    if (a.vocab) c.vocab_size = *a.vocab;
    if (a.max_pos) c.max_position_embeddings = *a.max_pos;
    if (a.rope_theta) c.rope_theta = *a.rope_theta;
    if (!a.rope_scaling.empty()) {
        JsonDocument doc(a.rope_scaling, "--rope-scaling");
        c.rope_scaling = parse_rope_scaling(doc.root_object(), "--rope-scaling", "rope_scaling");
    }
    spec.rope_parameters = a.rope_parameters;
    if (a.sliding_window) {
        if (c.arch != Arch::mistral) throw Error(ExitCode::usage, "--sliding-window is for Mistral presets");
        c.sliding_window = *a.sliding_window;
    }
    if (a.tied && a.untied) throw Error(ExitCode::usage, "--tied and --untied contradict each other");
    if (a.tied || a.alias) c.tie_word_embeddings = true;
    if (a.untied) c.tie_word_embeddings = false;
    spec.tied_as_alias = a.alias;
    spec.dtype = *dtype_from_name(a.dtype);
    spec.shards = a.shards;
    spec.seed = a.seed;
    spec.tokenizer_dir = a.tokenizer;
    spec.sparse = a.sparse;
    spec.mlp_scale = a.mlp_scale;
    // Special tokens must stay inside a shrunk vocabulary.
    if (c.bos_token_id && *c.bos_token_id >= int64_t(c.vocab_size)) c.bos_token_id = 1;
    for (auto& id : c.eos_token_ids)
        if (id >= int64_t(c.vocab_size)) id = 2;
    return spec;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"rabbit-genmodel: random-weight models in Hugging Face format, for tests and benchmarks"};
    GenArgs a;
    add_options(app, a);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) { // --help
        return app.exit(e);
    } catch (const CLI::ParseError& e) { // as rabbit reports them: one line, the usage exit code
        fmt::print(stderr, "error: {}\n", e.what());
        return int(ExitCode::usage);
    }

    try {
        if (a.list) {
            for (const auto& n : preset_names()) fmt::print("{}\n", n);
            return 0;
        }
        if (a.preset.empty() || a.out.empty()) throw Error(ExitCode::usage, "--preset and --out are required");
        const GenSpec spec = spec_of(a);
        const uint64_t bytes = generate_model(spec, a.out);
        fmt::print(stderr, "wrote {} ({}, {} layers, {} weights) to {}\n", a.preset, spec.config.architecture,
                   spec.config.num_layers, format_bytes(bytes), a.out);
        return 0;
    } catch (const Error& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(e.code());
    }
}
