// SPDX-License-Identifier: Apache-2.0
// Speculative decoding: a drafter proposes tokens to follow the current one, a chain of k or
// a tree of up to a budget, the target runs the current token and all of them in ONE forward
// pass (a chain needs only the causal mask; a tree, Engine::forward_tree), and the target's
// own choice at each node decides which path stands. A streamed target pays for its weights
// once per pass, so every accepted draft is a token for almost nothing. docs/ARCHITECTURE.md
// ("Speculative decoding") has the rules.
#pragma once

#include "engine/engine.h"
#include "engine/sampler.h"
#include "tokenizer/tokenizer.h"

#include <cstdint>
#include <string>
#include <vector>

namespace rabbit {

// What a drafter proposes: tokens, the tree they form, and for a draft model that sampled
// them, the distribution each was drawn from (siblings drawn independently from their
// parent's). Without q, each token is a point mass (ngram, greedy drafting, the trees of
// DraftTreeBuilder: a deterministic choice of the likeliest continuations).
struct Draft {
    std::vector<int32_t> tokens;
    std::vector<int64_t> parents;     // empty: a chain; else per token, its parent's index, -1 for the current token
    std::vector<TokenDistribution> q; // empty, or one per token
    bool chain() const;               // every token's parent the one before
};

class Drafter {
public:
    virtual ~Drafter() = default;
    // Up to k tokens to follow `context`: every token so far, the last one not yet in the
    // target's KV cache. Fewer (or none) when it has nothing to say.
    virtual Draft propose(const std::vector<int32_t>& context, size_t k) = 0;
    // A tree of up to `budget` tokens to follow `context`; the default is a chain of that many.
    virtual Draft propose_tree(const std::vector<int32_t>& context, size_t budget) { return propose(context, budget); }
};

// Prompt lookup: the most recent earlier occurrence of the context's last n tokens (n from
// max_n down to 1), proposing the tokens that followed it. Free to run; it pays where the
// output repeats its input (rewriting, code edits, quoting).
class NgramDrafter : public Drafter {
public:
    explicit NgramDrafter(size_t max_n = 3) : max_n_(max_n) {}
    Draft propose(const std::vector<int32_t>& context, size_t k) override;
    // The continuations of the latest few distinct earlier matches, merged as a tree.
    Draft propose_tree(const std::vector<int32_t>& context, size_t budget) override;

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
    // SpecExec's tree: grown best first by cumulative probability (the product along the
    // path), the likeliest unexpanded candidates a wave at a time, each wave one forward_tree
    // of the draft; up to `budget` tokens. A token's probability is the draft's, until the
    // target's choices have measured how often the draft's r-th likeliest child is taken when
    // reached (Sequoia's acceptance by rank); then that. A draft that agrees with the target
    // grows a deep chain, one that does not a bushy tree. Deterministic: each token a point
    // mass, for greedy decoding and sampling alike.
    Draft propose_tree(const std::vector<int32_t>& context, size_t budget) override;

    static constexpr size_t k_children = 8; // candidates taken from each fed token's distribution

private:
    // The draft's cache brought to `context` (its shared prefix kept, the rest fed); false
    // when it cannot be (the context full, an id of the target's padded vocabulary).
    //   logits: the draft's, after the context   [vocab] f32
    bool follow(const std::vector<int32_t>& context, std::vector<float>& logits);
    // The previous tree's children that the target took, read from the context that follows
    // it, counted by rank.
    void learn(const std::vector<int32_t>& context);
    double child_probability(size_t rank, double q) const;

    Draft last_tree_;           // the last tree proposed
    std::vector<uint8_t> last_ranks_; // each of its tokens' rank among its siblings by the draft's probability
    size_t last_tree_at_ = 0;   // the length of the context it followed
    std::vector<int32_t> last_context_tail_; // that context's last token, to check that the new one extends it
    double rank_tried_[k_children] = {}, rank_taken_[k_children] = {};

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
    size_t index = 0; // accepted: which of the candidates
};
Verdict speculative_rule(const TokenDistribution& p, const TokenDistribution* q, int32_t drafted, Sampler& sampler);

// The multi-draft rule over the children of a tree node (SpecInfer's recursive rejection
// sampling, Miao et al. 2024): with the residual r = p, for each candidate x_i in turn accept
// it with probability min(1, r(x_i) / q_i(x_i)); else r = max(0, r - q_i), normalised, and on
// to the next; when all are rejected, draw from the last r. q_i null: a point mass at x_i
// (r(x_i) is then zeroed). Whatever the q_i, the token is distributed as p, provided each x_i
// was drawn from q_i independently of the others given the context (or fixed: point masses).
Verdict multi_draft_rule(const TokenDistribution& p, const std::vector<int32_t>& candidates,
                         const std::vector<const TokenDistribution*>& q, Sampler& sampler);

// Runs history.back() and the draft through the target in one pass at its position() (a
// chain by forward, a tree by forward_tree), and returns the tokens that stand: the accepted
// path of the draft, then one of the target's own. From the current token down, greedy: the
// child equal to the target's argmax, if there is one; sampling: multi_draft_rule over the
// children (speculative_rule for a chain). The KV cache keeps history.back() and the accepted
// path in place; the rejected rows are dropped.
//   history: every token so far (for the repetition penalty), the last one not yet in the cache
//   keep: when given, the logits rows of the kept positions are appended   [kept, vocab] f32
std::vector<int32_t> verify_draft(Engine& target, Sampler& sampler, const std::vector<int32_t>& history,
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
    // For the accepted drafts of a pass as c ln(1 + drafts) (DraftBudget): sums of
    // ln(1 + drafts)^2 and accepted ln(1 + drafts).
    double log_width2 = 0, accepted_log_width = 0;
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

// How big a tree to draft next (--draft-budget): max, or (adaptive) the budget B in [0, max]
// that makes the most tokens per second by the measured costs. The accepted drafts of a pass
// grow about as the logarithm of the tree's size (each doubling of a best-first tree adds a
// similar share of the target's likely continuations; SpecExec's and Sequoia's measurements),
// so they are fitted as c ln(1 + B) over the passes so far; a pass over B drafts costs
// t_v(B + 1) + B t_d, with t_v and t_d measured as DraftLength measures them. The budgets
// tried are max, max/2, max/4, ..., 1 and 0; every 8th pass drafts half the best, so that the
// widths vary and t_v's slope can be fitted; where no draft pays, one in every 16th pass keeps
// measuring.
class DraftBudget {
public:
    DraftBudget(size_t max, bool adaptive) : max_(max), adaptive_(adaptive) {}
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
