// SPDX-License-Identifier: Apache-2.0
// Batched generation: many prompts, at most engine.slots() of them in flight, every pass of
// the model stepping all of them at once (one decode token each, and the whole prompt of
// any that has just been admitted). A sequence that ends frees its slot for the next prompt
// (continuous batching). Each sequence keeps its own sampler, seeded by its prompt, so its
// tokens are those it would get alone (greedy; sampled with the same seed).
#pragma once

#include "engine/engine.h"
#include "engine/generate.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

namespace rabbit {

struct BatchPrompt {
    size_t index = 0;          // its place among the inputs, passed through to its outcome
    std::vector<int32_t> ids;  // the prompt's tokens
    size_t max_tokens = 256;
    uint64_t seed = 0;
};

struct BatchOutcome {
    size_t index = 0;
    std::vector<int32_t> tokens; // generated, the stopping token included
    std::string text;            // their text, stop string excluded
    std::string stop_reason;     // as GenerateResult's: "eos", "stop string", "max tokens", "context full"
    std::string error;           // set instead when the prompt could not run (longer than the context)
    size_t prompt_tokens = 0;
    double seconds = 0;          // from its admission to its end
    double first_token_seconds = 0; // from its admission to its first token (its prefill's pass)
};

struct BatchStats {
    size_t passes = 0;           // forward_slots calls
    size_t prompt_tokens = 0, generated = 0;
    double seconds = 0;
};

// options: stops and sampling as for generate() (sampling.seed replaced by each prompt's;
// no drafter, no logits kept). on_done receives each outcome as its sequence ends.
BatchStats generate_batch(Engine& engine, const Tokenizer& tok, const std::vector<BatchPrompt>& prompts,
                          const GenerateOptions& options, const std::function<void(BatchOutcome&&)>& on_done);

} // namespace rabbit
