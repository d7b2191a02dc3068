// SPDX-License-Identifier: Apache-2.0
// How both engines lay out a forward of many sequences (Engine::forward_slots): their tokens
// one after another, cut into passes of at most --batch tokens, each pass knowing which rows
// belong to which sequence (for RoPE, the KV cache and attention) and which rows' logits
// are wanted. Everything else in a pass (the norms, every matrix product) is row by row, so
// the sequences share each layer's weights without knowing of each other.
#pragma once

#include "engine/engine.h"

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rabbit {

// Rows [row, row + n) of a pass: tokens of `slot` at positions [pos, pos + n).
struct SlotRun {
    size_t slot = 0, row = 0, n = 0, pos = 0;
};

struct SlotPass {
    std::vector<int32_t> tokens; // [rows] the pass's token ids
    std::vector<SlotRun> runs;   // in row order, covering every row
    std::vector<size_t> logit_rows; // the rows whose logits are wanted, in the output's order
    size_t first = 0;            // the pass's first token among all the forward's tokens
};

// seqs cut into passes of at most `batch` tokens; positions[slot] is where each slot's
// tokens start. Checks that the entries name distinct slots below positions.size(), each
// with tokens and no more logits than tokens, and that each fits the context ctx.
std::vector<SlotPass> slot_passes(const ModelConfig& c, const std::vector<SlotTokens>& seqs,
                                  const std::vector<size_t>& positions, size_t batch, uint64_t ctx);

// All the forward's tokens, for the prefill reporter.
size_t total_tokens(const std::vector<SlotTokens>& seqs);

} // namespace rabbit
