// SPDX-License-Identifier: Apache-2.0
// rabbit-genmodel: writes a random-weight model in Hugging Face format. See genmodel.h.
#include "genmodel.h"

#include "common/error.h"
#include "common/units.h"

#include <CLI/CLI.hpp>

#include <cstdio>

using namespace rabbit;

int main(int argc, char** argv) {
    CLI::App app{"rabbit-genmodel: random-weight models in Hugging Face format, for tests and benchmarks"};
    std::string preset, out, dtype = "f32", tokenizer;
    uint32_t layers = 0, hidden = 0, inter = 0, heads = 0, kv_heads = 0, head_dim = 0, vocab = 0, shards = 1;
    uint64_t seed = 0, max_pos = 0;
    int64_t sliding_window = -1;
    bool tied = false, untied = false, alias = false, list = false, sparse = false;
    app.add_flag("--list", list, "List the presets and exit");
    app.add_option("-p,--preset", preset, "A named configuration: tiny-qwen2, qwen2.5-7b, ... (--list)");
    app.add_option("-o,--out", out, "Output directory");
    app.add_option("--layers", layers, "Number of decoder layers (fewer than the preset's for quick benchmarks)");
    app.add_option("--hidden", hidden, "hidden_size");
    app.add_option("--intermediate", inter, "intermediate_size");
    app.add_option("--heads", heads, "num_attention_heads");
    app.add_option("--kv-heads", kv_heads, "num_key_value_heads");
    app.add_option("--head-dim", head_dim, "head_dim (default: the preset's, or hidden / heads)");
    app.add_option("--vocab", vocab, "vocab_size");
    app.add_option("--max-pos", max_pos, "max_position_embeddings");
    app.add_option("--sliding-window", sliding_window, "Mistral: attention window in tokens (0: none)");
    app.add_option("--dtype", dtype, "Tensor dtype")->check(CLI::IsMember({"f32", "f16", "bf16"}));
    app.add_option("--shards", shards, "Number of safetensors files (1: model.safetensors)");
    app.add_option("--seed", seed, "Random seed");
    app.add_flag("--tied", tied, "Tie lm_head to the embedding");
    app.add_flag("--untied", untied, "Give lm_head its own matrix");
    app.add_flag("--alias-tied", alias, "Tied: store lm_head.weight once, with the embedding as a metadata alias");
    app.add_option("--tokenizer", tokenizer, "Copy tokenizer files from this directory");
    app.add_flag("--sparse", sparse, "Write headers only; the weights are holes that read as zeros (for planning tests)");
    float mlp_scale = 1.0f;
    app.add_option("--mlp-scale", mlp_scale, "Multiply the gate and up projections by this (MLP activations grow by its square)")
        ->check(CLI::PositiveNumber);
    CLI11_PARSE(app, argc, argv);

    try {
        if (list) {
            for (const auto& n : preset_names()) std::printf("%s\n", n.c_str());
            return 0;
        }
        if (preset.empty() || out.empty()) throw Error(ExitCode::usage, "--preset and --out are required");
        GenSpec spec = preset_spec(preset);
        ModelConfig& c = spec.config;
        const bool reshaped = hidden || heads;
        if (layers) c.num_layers = layers;
        if (hidden) c.hidden_size = hidden;
        if (inter) c.intermediate_size = inter;
        if (heads) c.num_heads = heads;
        if (kv_heads) c.num_kv_heads = kv_heads;
        if (head_dim) c.head_dim = head_dim;
        else if (reshaped && c.arch != Arch::qwen3) c.head_dim = c.hidden_size / c.num_heads;
        if (vocab) c.vocab_size = vocab;
        if (max_pos) c.max_position_embeddings = max_pos;
        if (sliding_window >= 0) {
            if (c.arch != Arch::mistral) throw Error(ExitCode::usage, "--sliding-window is for Mistral presets");
            c.sliding_window = uint32_t(sliding_window);
        }
        if (tied && untied) throw Error(ExitCode::usage, "--tied and --untied contradict each other");
        if (tied || alias) c.tie_word_embeddings = true;
        if (untied) c.tie_word_embeddings = false;
        spec.tied_as_alias = alias;
        spec.dtype = *dtype_from_name(dtype);
        spec.shards = shards;
        spec.seed = seed;
        spec.tokenizer_dir = tokenizer;
        spec.sparse = sparse;
        spec.mlp_scale = mlp_scale;
        // Special tokens must stay inside a shrunk vocabulary.
        if (c.bos_token_id && *c.bos_token_id >= int64_t(c.vocab_size)) c.bos_token_id = 1;
        for (auto& id : c.eos_token_ids)
            if (id >= int64_t(c.vocab_size)) id = 2;
        uint64_t bytes = generate_model(spec, out);
        std::fprintf(stderr, "wrote %s (%s, %u layers, %s weights) to %s\n", preset.c_str(), c.architecture.c_str(),
                     c.num_layers, format_bytes(bytes).c_str(), out.c_str());
        return 0;
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return int(e.code());
    }
}
