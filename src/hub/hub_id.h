// SPDX-License-Identifier: Apache-2.0
// A model named by its Hugging Face hub id, as `-m` and `rabbit pull` take it:
// ORG/NAME, optionally @REVISION (a branch, a tag or a commit hash) and :QUANT (the quant tag of
// a GGUF file in the repo, as llama.cpp's -hf takes it: ORG/NAME:Q4_K_M).
#pragma once

#include <optional>
#include <string>

namespace rabbit {

struct HubId {
    std::string repo;              // "Qwen/Qwen2.5-0.5B-Instruct"
    std::string revision = "main"; // a branch, a tag or a 40-hex commit
    std::string quant;             // "Q4_K_M", or empty
    std::string text() const;      // as the user wrote it, canonically
};

// nullopt when TEXT is not shaped like a hub id (a path such as "./m", "/x/y", "a/b/c", "m.gguf"
// is not). The caller first checks whether a local path TEXT exists: a local path always wins.
std::optional<HubId> parse_hub_id(const std::string& text);

// Whether REV is a full commit hash (40 lowercase hex digits), which needs no refs/ lookup.
bool is_commit_hash(const std::string& rev);

} // namespace rabbit
