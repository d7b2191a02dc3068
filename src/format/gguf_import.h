// SPDX-License-Identifier: Apache-2.0
// A GGUF model (llama, qwen2, qwen3) seen as a Hugging Face checkpoint, so that the split
// plan and the splitter treat it as they treat safetensors: the GGUF files are the shards,
// the config is made from the metadata, the tensors carry their Hugging Face names, and the
// tokenizer files are made from tokenizer.ggml.*. Quantized tensors keep their GGML type.
// docs/FORMAT.md ("From GGUF") lists the mapping.
#pragma once

#include "format/gguf.h"
#include "format/hf_checkpoint.h"

#include <cstdint>
#include <map>
#include <string>

namespace rabbit {

// Opens a GGUF (one file or any part of a split set) and maps it. Throws unsupported for an
// architecture other than llama, qwen2, qwen3, or a tensor rabbit does not map, bad_input for
// inconsistent metadata. with_tokenizer: also make the tokenizer files (what a split needs,
// not what `inspect` needs).
HfCheckpoint open_gguf_checkpoint(const std::string& path, bool with_tokenizer = true);

// The Hugging Face name of a GGUF tensor ("blk.3.attn_q.weight" ->
// "model.layers.3.self_attn.q_proj.weight"), or "" for one rabbit does not map.
std::string hf_name_of_gguf_tensor(const std::string& gguf_name);

// The config.json text a GGUF's metadata describes (throws as open_gguf_checkpoint).
std::string gguf_config_json(const GgufSet& set);

// What `rabbit inspect FILE.gguf` shows of the file itself.
struct GgufSummary {
    std::string architecture; // general.architecture
    std::string name;         // general.name, or ""
    uint32_t version = 0;
    size_t parts = 1;
    size_t tensors = 0;
    struct TypeUse {
        size_t tensors = 0;
        uint64_t bytes = 0;
    };
    std::map<std::string, TypeUse> types; // by GGML type name: "Q4_1"
};
GgufSummary summarize_gguf(const GgufSet& set);

} // namespace rabbit
