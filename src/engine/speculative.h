// SPDX-License-Identifier: Apache-2.0
// Speculative decoding with chain drafts: a drafter proposes k tokens to follow the current
// one, the target runs the current token and the k drafts in ONE forward pass (a chain needs
// only the causal mask), and the target's own choice at each position decides how many of
// them stand. A streamed target pays for its weights once per pass, so every accepted draft
// is a token for almost nothing. docs/ARCHITECTURE.md ("Speculative decoding") has the rules.
#pragma once

#include "engine/engine.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

// What a drafter proposes: tokens, and for a draft model that sampled them, the distribution
// each was drawn from. Without q, each token is a point mass (ngram, or greedy drafting).
struct Draft {
    std::vector<int32_t> tokens;
    std::vector<TokenDistribution> q; // empty, or one per token
};

class Drafter {
public:
    virtual ~Drafter() = default;
    // Up to k tokens to follow `context`: every token so far, the last one not yet in the
    // target's KV cache. Fewer (or none) when it has nothing to say.
    virtual Draft propose(const std::vector<int32_t>& context, size_t k) = 0;
};

// Prompt lookup: the most recent earlier occurrence of the context's last n tokens (n from
// max_n down to 1), proposing the tokens that followed it. Free to run; it pays where the
// output repeats its input (rewriting, code edits, quoting).
class NgramDrafter : public Drafter {
public:
    explicit NgramDrafter(size_t max_n = 3) : max_n_(max_n) {}
    Draft propose(const std::vector<int32_t>& context, size_t k) override;

private:
    size_t max_n_;
};

// A small model with the same tokenizer, as its own engine with its own KV cache. Its cache
// follows the context: each proposal first cuts it back to the longest prefix it shares with
// the context (the rejected drafts go), then feeds what is new.
class ModelDrafter : public Drafter {
public:
    // sampling: the target's settings; the draft samples (or picks greedily) the same way,
    // from its own random stream.
    ModelDrafter(Engine& engine, const SamplingParams& sampling);
    Draft propose(const std::vector<int32_t>& context, size_t k) override;

private:
    Engine& engine_;
    Sampler sampler_;
    bool greedy_;
    std::vector<int32_t> cached_; // the tokens in the draft's KV cache, in order
};

// The speculative sampling rule at one drafted position (Leviathan et al. 2023, Chen et al.
// 2023): accept the drafted token x with probability min(1, p(x) / q(x)); otherwise draw from
// the residual max(0, p - q), normalised. q null: a point mass at x (accept with p(x)). The
// token that comes out is distributed as p, whatever q is.
struct Verdict {
    bool accepted = false;
    int32_t token = 0;
};
Verdict speculative_rule(const TokenDistribution& p, const TokenDistribution* q, int32_t drafted, Sampler& sampler);

// Runs history.back() and the draft through the target in one pass at its position(), and
// returns the tokens that stand: the accepted prefix of the draft, then one of the target's
// own (greedy: while its argmax equals the draft; sampling: speculative_rule). The KV cache
// keeps history.back() and the accepted drafts; the rejected positions are cut off.
//   history: every token so far (for the repetition penalty), the last one not yet in the cache
//   keep: when given, the logits rows of the kept positions are appended   [kept, vocab] f32
std::vector<int32_t> verify_chain(Engine& target, Sampler& sampler, const std::vector<int32_t>& history,
                                  const Draft& draft, std::vector<float>* keep);

// Counted over a generation.
struct SpecStats {
    size_t passes = 0;   // target passes of the decode, drafts or not
    size_t drafted = 0;  // draft tokens proposed
    size_t accepted = 0; // of those, accepted
    double draft_s = 0, verify_s = 0;
    // For the pass time as a line in the tokens a pass holds (w = drafts + 1): sums of w,
    // w^2 and w t over the passes.
    double width = 0, width2 = 0, width_s = 0;
    double tokens_per_pass() const { return passes ? double(passes + accepted) / double(passes) : 0; }
    void add_pass(size_t drafts, size_t accepted_drafts, double draft_seconds, double verify_seconds);
};

// How many tokens to draft next: max, or (adaptive) the k in [0, max] that makes the most
// tokens per second by the measured costs. Each draft is accepted with the rate a seen so far,
// so that a pass yields (1 - a^(k+1)) / (1 - a) tokens; it costs t_v(k + 1) + k t_d seconds,
// t_d a draft token's time and t_v(w) = t0 + t1 w the target's pass over w tokens, fitted to
// the passes so far (a streamed target: t1 ~ 0, the weights' bytes dominate; a resident one on
// the CPU: t1 is the compute of a token). Where no draft pays, one token every 16th pass
// keeps measuring.
class DraftLength {
public:
    DraftLength(size_t max, bool adaptive) : max_(max), adaptive_(adaptive) {}
    size_t next(const SpecStats& s) const;

private:
    size_t max_;
    bool adaptive_;
};

// The draft's tokenizer must give every id both define the same piece as the target's
// (their models' vocabularies may be padded to different sizes); else a usage error naming
// both directories.
void check_same_vocabulary(const Tokenizer& target, const std::string& target_dir, const Tokenizer& draft,
                           const std::string& draft_dir);

} // namespace rabbit
