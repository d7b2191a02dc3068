// SPDX-License-Identifier: Apache-2.0
// Choosing the next token from logits, as transformers' generate() does: repetition penalty,
// then temperature, top-k, top-p and min-p, then a draw from the softmax (or argmax for
// greedy decoding).
#pragma once

#include <cstdint>
#include <random>
#include <vector>

namespace rabbit {

// A distribution over a few ids (what top-k, top-p and min-p keep): p sums to 1.
struct TokenDistribution {
    std::vector<int32_t> ids;
    std::vector<double> p;
    double of(int32_t id) const; // 0 for an id not kept
};

struct SamplingParams {
    float temperature = 0.0f;        // 0: greedy
    int top_k = 0;                   // 0: off
    float top_p = 1.0f;              // 1: off
    float min_p = 0.0f;              // 0: off
    float repetition_penalty = 1.0f; // 1: off; applies to every token of the context so far
    uint64_t seed = 0;
};

class Sampler {
public:
    explicit Sampler(const SamplingParams& p) : p_(p), rng_(p.seed) {}
    // logits [vocab] (modified); history: the prompt and the tokens generated so far.
    int32_t sample(std::vector<float>& logits, const std::vector<int32_t>& history);
    // The rest of sample() for candidates chosen elsewhere (the GPU's top-k): logits already
    // penalised and divided by the temperature, sorted larger first (the lower id first among
    // equals), at least min(top_k, vocab) of them when top_k is on, else the whole vocabulary.
    int32_t sample_sorted(const std::vector<float>& values, const std::vector<int32_t>& ids);
    // The rest of sample() for logits already penalised and divided by the temperature.
    int32_t sample_scaled(const std::vector<float>& logits);
    const SamplingParams& params() const { return p_; }

    // What sample() draws from, for temperature > 0 (speculative sampling needs p itself).
    TokenDistribution distribution(std::vector<float>& logits, const std::vector<int32_t>& history) const;
    // A draw from d, and a uniform number in [0, 1), from this sampler's random stream.
    int32_t draw(const TokenDistribution& d);
    double uniform();

private:
    void penalize(std::vector<float>& logits, const std::vector<int32_t>& history) const;
    TokenDistribution kept(const std::vector<float>& values, const std::vector<int32_t>& ids) const;
    TokenDistribution scaled_distribution(const std::vector<float>& logits) const;

    SamplingParams p_;
    std::mt19937_64 rng_;
};

// The first index of the largest value, as torch.argmax.
int32_t argmax(const std::vector<float>& v);

// The ids a repetition penalty applies to: the distinct ones of history inside [0, vocab).
std::vector<int32_t> penalised_ids(const std::vector<int32_t>& history, size_t vocab);

} // namespace rabbit
