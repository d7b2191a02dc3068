// SPDX-License-Identifier: Apache-2.0
// Mixture-of-experts GGUFs (qwen2moe, qwen3moe, and llama with an expert count: Mixtral) as
// the Hugging Face checkpoint gguf_import.h makes of them: the MoE keys of config.json from
// the metadata, and each layer's stacked experts (ffn_{gate,up,down}_exps, ne = [in, out,
// n_expert]) cut into one source tensor per expert, each a contiguous slice of whole rows, so
// that the split lays them out as it lays out a safetensors MoE. docs/FORMAT.md ("From GGUF").
#pragma once

#include "common/json_writer.h"
#include "format/gguf.h"
#include "format/hf_checkpoint.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

struct GgufMoe {
    bool mixtral = false;            // llama with <arch>.expert_count
    uint32_t experts = 0;            // <arch>.expert_count
    uint32_t experts_per_tok = 0;    // <arch>.expert_used_count
    uint32_t expert_ffn = 0;         // <arch>.expert_feed_forward_length (Mixtral: feed_forward_length)
    uint32_t shared_ffn = 0;         // <arch>.expert_shared_feed_forward_length; 0: no shared expert
    bool norm_topk_prob = false;     // <arch>.expert_weights_norm, else what llama.cpp's graph does
    std::vector<uint32_t> dense_layers; // layers without stacked experts (a plain ffn_gate/up/down)
};

// Whether GGUF architecture `arch` is a MoE one rabbit maps (qwen2moe, qwen3moe).
bool is_gguf_moe_arch(const std::string& arch);

// The MoE description of `set`, or nullopt for a dense model. Throws bad_input naming the
// file for missing or inconsistent counts, unsupported for routing rabbit does not run.
std::optional<GgufMoe> read_gguf_moe(const GgufSet& set, const std::string& arch, uint64_t layers);

// config.json's MoE keys, in the names ModelConfig::from_hf reads for the architecture.
void write_gguf_moe_config(JsonWriter& w, const GgufMoe& m);

// A MoE tensor of layer `layer` ("7"), `rest` its name after "blk.7.": the router, the shared
// expert, or stacked experts, appended to `out` under their Hugging Face names. Returns false
// for a tensor that is none of these. Throws bad_input for stacked experts of the wrong shape.
bool add_gguf_moe_tensor(const GgufFile& part, const GgufTensorInfo& t, const std::string& layer, const std::string& rest,
                         const GgufMoe& m, uint64_t hidden, uint32_t shard, std::vector<SourceTensor>& out);

} // namespace rabbit
