// SPDX-License-Identifier: Apache-2.0
// `rabbit run --prompts FILE`: every prompt of FILE generated, --parallel of them in flight
// in each pass of the model (engine/batch_generate.h), one JSON object per prompt on stdout.
#pragma once

#include "cli/commands.h"
#include "cli/run_setup.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

// The prompt text as token ids, as `rabbit run` feeds it: one user turn in the model's chat
// template (or --chat-format's writer) unless --raw or the model has no template. announce:
// say which template (once for a file of prompts). In cmd_run.cpp.
std::vector<int32_t> encode_prompt(const RunOptions& o, const CLI::App* sub, const SplitModel& model,
                                   const Tokenizer& tok, const std::string& prompt, bool announce);

// Runs --prompts; returns 0, or 3 (bad input) when some line or prompt failed (each named on
// stderr and in its JSON object), after the others ran.
int run_prompts(const RunOptions& o, const CLI::App* sub, const GlobalOptions& global);

// The JSON "stop" of a GenerateResult::stop_reason: eos, max_tokens, stop, ctx.
std::string stop_name(const std::string& reason);

} // namespace rabbit
