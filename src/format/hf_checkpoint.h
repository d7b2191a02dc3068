// SPDX-License-Identifier: Apache-2.0
// A Hugging Face model directory: config.json, optional generation_config.json, tokenizer
// files, and weights as one model.safetensors or as shards listed by
// model.safetensors.index.json. Opening it validates every shard's header and resolves the
// tensor names (including safetensors metadata aliases) to byte ranges.
#pragma once

#include "common/dtype.h"

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

namespace simdjson::dom {
class array;
}

namespace rabbit {

class JsonWriter;

struct SourceShard {
    std::string file;         // name inside the model directory
    uint64_t size = 0;        // bytes
    uint64_t header_hash = 0; // XXH3-64 of its safetensors header
    bool present = true;      // false: deleted by `split --delete-original` of an earlier run
};

struct SourceTensor {
    std::string name;
    DType dtype = DType::f32;
    std::vector<uint64_t> shape;
    uint32_t shard = 0;  // index into HfCheckpoint::shards
    uint64_t offset = 0; // absolute byte offset in the shard file
    uint64_t nbytes = 0;
    // > 0: the rows are in llama.cpp's rotary order for this many heads (a GGUF's q and k of
    // a llama model), which the split plan undoes row by row.
    uint32_t permuted_heads = 0;
};

struct HfCheckpoint {
    std::string dir;
    std::string config_text;                       // config.json
    std::optional<std::string> generation_text;    // generation_config.json
    std::vector<SourceShard> shards;
    std::map<std::string, SourceTensor> tensors;   // by name, aliases included
    std::map<std::string, std::string> aliases;    // alias -> stored name
    // A GGUF model (format/gguf_import.h): its first file, where config_text was made from
    // the metadata, and the companion files made from it rather than copied (name, text).
    std::string gguf_file;
    std::vector<std::pair<std::string, std::string>> made_files;

    bool from_gguf() const { return !gguf_file.empty(); }

    const SourceTensor* find(const std::string& name) const;
    std::string shard_path(uint32_t shard) const;
    std::string config_path() const;
};

// Files of a model directory that are not weights but travel with them (tokenizer, chat
// template, generation settings), in the order they are looked for.
const std::vector<std::string>& hf_companion_files();

// What an interrupted `split --delete-original` recorded about a shard it already removed.
struct DeletedShard {
    SourceShard shard;
    std::vector<SourceTensor> tensors; // their `shard` field is not used
};

// JSON of deleted-shard records, kept by the split journal and the manifest.
void write_deleted_shards(JsonWriter& w, const std::vector<DeletedShard>& shards);
std::vector<DeletedShard> parse_deleted_shards(simdjson::dom::array a, const std::string& file);

// Opens and validates a model directory. A shard missing from the directory is an error
// unless `deleted` describes it.
HfCheckpoint open_hf_checkpoint(const std::string& dir, const std::vector<DeletedShard>& deleted = {});

// True when dir holds what open_hf_checkpoint needs to start (config.json).
bool looks_like_hf_checkpoint(const std::string& dir);

} // namespace rabbit
