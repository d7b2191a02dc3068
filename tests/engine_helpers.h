// SPDX-License-Identifier: Apache-2.0
// What the engine tests share: splitting a model for a test, and greedy decoding through any
// engine.
#pragma once

#include "engine/engine.h"
#include "helpers.h" // worst_error, rms
#include "format/split_model.h"
#include "split/plan.h"
#include "split/splitter.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit::test {

// Splits the Hugging Face directory src into out (quietly); returns out.
std::string split_into(const std::string& src, const std::string& out, DTypeChoice dtype = DTypeChoice::automatic);
// The same, with the splitter's chunk size, returning what it reports.
SplitResult split_quietly(const std::string& src, const std::string& out, DTypeChoice dtype = DTypeChoice::automatic,
                          size_t chunk = 16u << 20);

// rabbit-genmodel with `genmodel_args` into dir/hf, split into dir/split; returns the split.
std::string generate_and_split(const std::vector<std::string>& genmodel_args, const TempDir& dir);

// n token ids below vocab that do not repeat soon: a prompt long enough to cross several of
// the attention kernels' blocks of positions.
std::vector<int32_t> long_prompt(size_t n, int32_t vocab);

// Greedy continuation of `prompt` until `total` tokens in all (prompt included), from an
// empty KV cache.
std::vector<int32_t> greedy(Engine& engine, const std::vector<int32_t>& prompt, size_t total);

// The logits of every position of `prompt`, then of three decode steps (tokens 5, 99, 400,
// modulo the vocabulary),
// from an empty KV cache.   [prompt + 3, vocab] f32
std::vector<float> prompt_and_steps_logits(Engine& engine, const std::vector<int32_t>& prompt);

// A golden of tests/data/goldens (scripts/hf_reference.py --goldens): transformers on the CPU
// in float32 on a model rabbit-genmodel makes from `genmodel` arguments.
struct HfGolden {
    std::string name;
    std::vector<std::string> genmodel;
    std::vector<int32_t> prompt;
    std::vector<float> prompt_logits; // [prompt, vocab]
    std::vector<int32_t> greedy;      // 32 greedy ids after the prompt
};
const std::vector<std::string>& hf_golden_names();
HfGolden read_hf_golden(const std::string& name);

// A MoE checkpoint of tests/data/moe (transformers wrote it), or a MoE GGUF's reference.
std::string moe_dir(const std::string& name);
struct MoeReference {
    std::vector<int32_t> prompt, greedy; // greedy: the prompt and 16 greedy tokens after it
    std::vector<float> prompt_logits;    // [prompt, vocab]
};
// Reads prompt_ids, prompt_logits and greedy_ids from the reference JSON at path.
MoeReference read_moe_reference(const std::string& path);
// The CPU engine's prompt logits within (atol, rtol) of ref's and its greedy tokens equal, the
// prompt whole and in prefill parts of 3 tokens.
void check_moe_reference(const SplitModel& model, const MoeReference& ref, const std::string& name, double atol,
                         double rtol);
// Generates the golden's model with the given dtype under dir and splits it; returns the split.
std::string make_golden_model(const HfGolden& g, const std::string& dtype, const std::string& dir);

} // namespace rabbit::test
