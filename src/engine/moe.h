// SPDX-License-Identifier: Apache-2.0
// Mixture-of-experts routing as transformers does it (Qwen2-MoE, Qwen3-MoE, Mixtral): a
// softmax over every expert's router logit, the k most probable, and, where the config asks
// (norm_topk_prob; Mixtral always), those k renormalised to sum 1. Both engines route by it
// (the CUDA engine with the same rule on the device), and both group a pass's tokens by
// expert with ExpertBatches, so that each routed expert is read once per pass.
#pragma once

#include <cstddef>
#include <cstdint>
#include <vector>

namespace rabbit {

// For each of n tokens, its k experts (most probable first; ties to the lower index) and
// their weights.
//   logits [n, experts] f32; chosen [n, k]; weights [n, k] f32
void route_tokens(const float* logits, size_t n, size_t experts, size_t k, bool renormalise, int32_t* chosen,
                  float* weights);

// The tokens of a pass grouped by expert, experts in ascending order (the order in which
// transformers adds their outputs).
struct ExpertBatches {
    std::vector<uint32_t> experts;    // the experts some token routes to, ascending
    std::vector<size_t> begin;        // [experts.size() + 1]: expert i's slots are [begin[i], begin[i+1])
    std::vector<uint32_t> token;      // per slot: the token
    std::vector<float> weight;        // per slot: its routing weight
};
// chosen, weights: route_tokens' output for n tokens of k experts each, of `experts`.
ExpertBatches group_by_expert(const int32_t* chosen, const float* weights, size_t n, size_t k, size_t experts);

} // namespace rabbit
