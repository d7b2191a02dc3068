// SPDX-License-Identifier: Apache-2.0
// The split plan: for each unit of the model, its byte layout and, for each tensor in it,
// the source byte ranges it is made of. Validates the checkpoint against the config on the
// way (every tensor present, of the expected shape and a weight dtype, nothing unexpected).
// `rabbit split` executes a plan; `rabbit inspect` reads one.
#pragma once

#include "format/hf_checkpoint.h"
#include "format/unit_file.h"
#include "model/config.h"
#include "model/layout.h"

#include <optional>
#include <string>
#include <vector>

namespace rabbit {

enum class DTypeChoice { automatic, keep, f32, f16, bf16 };

std::optional<DTypeChoice> parse_dtype_choice(const std::string& s);
const char* dtype_choice_name(DTypeChoice c);

struct SourcePiece {
    std::string name;   // Hugging Face tensor name
    uint32_t shard = 0; // index into HfCheckpoint::shards
    uint64_t offset = 0;
    uint64_t nbytes = 0;
    DType dtype = DType::f32;
};

struct PlannedUnit {
    UnitKind kind = UnitKind::layer;
    uint32_t layer = 0;
    std::string file;
    UnitLayout layout;                            // the output's tensors and byte layout
    std::vector<std::vector<SourcePiece>> pieces; // per layout tensor, concatenated in order
    std::vector<uint32_t> shards;                 // the source shards it reads, sorted
};

struct SplitPlan {
    ModelConfig config;
    std::string dtype;       // the matrices' dtype, or "mixed"
    std::string fingerprint; // source identity (config, shard headers) and options
    std::vector<PlannedUnit> units;
    std::vector<std::string> notes; // decisions worth a log line (tied lm_head stored once, ...)

    uint64_t total_bytes() const;
};

SplitPlan plan_split(const HfCheckpoint& ck, DTypeChoice choice);

} // namespace rabbit
