// SPDX-License-Identifier: Apache-2.0
// What the speculative decoding tests share (chains in test_speculative.cpp, trees in
// test_speculative_tree.cpp): a tiny model with the repository's tokenizer, a prompt, and the
// check that greedy output is the same with and without each kind of draft.
#pragma once

#include "engine/engine.h"
#include "helpers.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit::test {

// A tiny random model of `preset` with the repository's synthetic byte-level tokenizer,
// split into dir/name.
std::string tiny_synthetic_model(const TempDir& dir, const std::string& name, const std::string& preset, uint64_t seed);

// A prompt that repeats itself, so that ngram drafts find something.
extern const std::vector<int32_t> k_spec_prompt;

enum class DraftShape { chain, tree };

// Greedy with and without each drafter (ngram, the model as its own draft, and another model
// when given), drafting chains (--draft-max) or trees (--draft-budget): the same tokens and
// text, the cache where a plain decode leaves it, and with every step's logits kept the rows a
// plain decode keeps. Returns the self-draft's tokens per pass at a fixed size (a chain of 4,
// a tree of 16: the defaults' scale).
double require_same_greedy(DraftShape shape, Engine& target, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                           Engine& self_draft, Engine* other_draft, size_t n);

} // namespace rabbit::test
