// SPDX-License-Identifier: Apache-2.0
// The generation loop: the prompt through the model at once, then one token at a time until
// an end-of-sequence id, a stop string or the token limit, with text streamed out as it is
// complete.
#pragma once

#include "engine/engine.h"
#include "engine/sampler.h"
#include "engine/speculative.h"
#include "tokenizer/tokenizer.h"

#include <functional>
#include <string>
#include <vector>

namespace rabbit {

struct GenerateOptions {
    size_t max_tokens = 256;
    std::vector<int32_t> stop_ids;         // end-of-sequence ids
    std::vector<std::string> stop_strings; // generation ends before any of them; it is not printed
    SamplingParams sampling;
    bool print_special = false;            // print special tokens' text
    bool keep_logits = false;              // fill GenerateResult::logits
    // The tokens already in the KV cache before the prompt (a chat's earlier turns): the
    // repetition penalty counts them as the context, as one pass over all of it would.
    std::vector<int32_t> preceding;
    // Speculative decoding: proposals from the drafter, at most draft_max a pass (adaptive:
    // fewer where the measured costs say so; DraftLength). The tokens are the same as without
    // (greedy), or distributed the same (sampling).
    // draft_budget > 0: trees of at most that many tokens (Drafter::propose_tree; adaptive:
    // DraftBudget) instead of chains.
    Drafter* drafter = nullptr;
    size_t draft_max = 6;
    size_t draft_budget = 0;
    bool draft_adaptive = true;
};

struct GenerateResult {
    std::vector<int32_t> tokens; // generated, the stopping token included
    std::string stop_reason;     // "eos", "stop string", "max tokens", "context full"
    size_t prompt_tokens = 0;
    double prefill_seconds = 0, decode_seconds = 0;
    SpecStats spec; // with a drafter
    StreamStats at_decode; // the engine's stream counters when the decode began (after the prompt)
    // With keep_logits: the logits of every prompt position, then of every step whose token
    // was not the last.   [prompt + generated - 1, vocab] f32
    std::vector<float> logits;
};

// on_text receives the generated text in pieces, as soon as each is final.
GenerateResult generate(Engine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(const std::string&)>& on_text);

} // namespace rabbit
