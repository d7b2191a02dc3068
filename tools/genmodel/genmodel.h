// SPDX-License-Identifier: Apache-2.0
// Random-weight models in Hugging Face format, for tests and benchmarks: any supported
// architecture and config, real shapes by preset (Qwen2.5-0.5B ... -72B, Qwen3, Llama 3,
// Mistral; the mixtures of experts Qwen3-30B-A3B, Qwen3-235B-A22B, Qwen2-57B-A14B and
// Mixtral-8x7B), optionally fewer layers; one file or sharded with an index; F32, F16 or BF16;
// tied or untied. Deterministic: the same spec and seed give the same bytes.
#pragma once

#include "common/dtype.h"
#include "model/config.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

struct GenSpec {
    ModelConfig config;        // architecture, shapes, RoPE, flags, special tokens
    DType dtype = DType::f32;  // of every tensor
    uint32_t shards = 1;       // 1: model.safetensors; more: model-0000i-of-0000n + index
    uint64_t seed = 0;
    bool tied_as_alias = false; // tied: store lm_head.weight once and alias the embedding to it (as tinystories-656k does)
    std::string tokenizer_dir;  // copy tokenizer files from here ("" for none)
    bool sparse = false;        // headers only, data left as holes reading zero: for tests of planning, not of values or I/O speed
    bool rope_parameters = false; // config.json as transformers 5 writes it (see hf_config_json)
    float mlp_scale = 1.0f;     // gate and up projections times this: MLP activations grow by its square (as
                                // Qwen2.x's exceed f16's range), for tests of the f16 compute path
};

// Named real configurations: "qwen2.5-7b", "tiny-qwen3", ... (see preset_names()).
GenSpec preset_spec(const std::string& name);
std::vector<std::string> preset_names();

// The Hugging Face config.json a transformers release would write for this config: its RoPE
// scaling under rope_scaling (transformers 4), or with rope_parameters under that key, with
// rope_theta inside (transformers 5).
std::string hf_config_json(const ModelConfig& c, DType dtype, bool rope_parameters = false);
// Its generation_config.json: the special tokens, every stop token listed.
std::string hf_generation_config_json(const ModelConfig& c);

// Writes config.json, generation_config.json, the weights and (optionally) tokenizer files
// into out_dir, which is created if needed. Returns the bytes of weights written.
uint64_t generate_model(const GenSpec& spec, const std::string& out_dir);

} // namespace rabbit
