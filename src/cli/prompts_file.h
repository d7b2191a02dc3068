// SPDX-License-Identifier: Apache-2.0
// `rabbit run --prompts FILE`: one prompt per line, as plain text, or as a JSON object
// {"prompt": TEXT, "max_tokens": N, "seed": S} (the last two optional: -n and --seed apply).
// Blank lines are skipped. A line that does not read is kept with its error, so that the
// other prompts still run.
#pragma once

#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

struct PromptLine {
    size_t index = 0; // among the file's prompts (its non-blank lines), from 0
    size_t line = 0;  // in the file, from 1
    std::string prompt;
    std::optional<size_t> max_tokens;
    std::optional<uint64_t> seed;
    std::string error; // "FILE:LINE: ..." when the line does not read
};

// text: the file's contents; path names it in the errors.
std::vector<PromptLine> parse_prompts(const std::string& text, const std::string& path);

} // namespace rabbit
