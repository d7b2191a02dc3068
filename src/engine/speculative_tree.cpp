// SPDX-License-Identifier: Apache-2.0
// Draft trees: the ngram drafter's (several earlier matches merged) and the draft model's
// (SpecExec's best-first growth by cumulative probability), and the rule that sizes them.
#include "engine/speculative.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <queue>

namespace rabbit {

namespace {

// Adds `tokens` under the current token as a path of `d`'s tree, sharing the longest prefix
// already there, until the tree holds `budget` tokens.
void merge_path(Draft& d, const int32_t* tokens, size_t n, size_t budget) {
    int64_t parent = -1;
    for (size_t i = 0; i < n && d.tokens.size() < budget; ++i) {
        int64_t found = -1;
        for (size_t j = 0; j < d.tokens.size() && found < 0; ++j)
            if (d.parents[j] == parent && d.tokens[j] == tokens[i]) found = int64_t(j);
        if (found < 0) {
            d.tokens.push_back(tokens[i]);
            d.parents.push_back(parent);
            found = int64_t(d.tokens.size() - 1);
        }
        parent = found;
    }
}

} // namespace

Draft NgramDrafter::propose_tree(const std::vector<int32_t>& context, size_t budget) {
    // The longest n with a match, as propose() finds it; its latest matches' continuations,
    // the most recent first, each up to the budget's worth of tokens, merged.
    constexpr size_t k_matches = 4;
    Draft d;
    const size_t len = context.size();
    if (budget == 0) return d;
    for (size_t n = std::min(max_n_, len > 0 ? len - 1 : 0); n >= 1 && d.tokens.empty(); --n) {
        const int32_t* tail = context.data() + (len - n);
        size_t matches = 0;
        for (size_t s = len - n; s-- > 0 && matches < k_matches && d.tokens.size() < budget;) {
            if (!std::equal(tail, tail + n, context.data() + s)) continue;
            const size_t from = s + n, to = std::min(len, from + budget);
            merge_path(d, context.data() + from, to - from, budget);
            ++matches;
        }
    }
    return d;
}

Draft ModelDrafter::propose_tree(const std::vector<int32_t>& context, size_t budget) {
    // Candidates by the log of their cumulative probability; each tree token that is fed
    // takes the draft cache's next row, in the order of the tree (rows base + index).
    struct Candidate {
        double logp;
        int64_t parent;
        int32_t token;
        uint8_t rank; // among its siblings, by the draft's probability
        bool operator<(const Candidate& o) const { return logp < o.logp; }
    };
    constexpr size_t k_waves = 8; // about this many draft passes a tree
    Draft d;
    learn(context);
    if (context.empty() || budget == 0) return d;
    std::vector<float> logits;
    if (!follow(context, logits)) return d;
    const size_t base = engine_.position(), vocab = engine_.config().vocab_size;
    budget = std::min(budget, size_t(engine_.context()) - base);
    const float temperature = greedy_ ? 1.0f : sampler_.params().temperature;
    std::priority_queue<Candidate> heap;
    std::vector<double> logp_of; // per tree token
    std::vector<uint8_t> ranks;  // per tree token
    auto push_children = [&](const float* row, int64_t parent, double logp) {
        // log softmax(row / temperature), its k_children largest.
        const float mx = *std::max_element(row, row + vocab);
        double sum = 0;
        for (size_t i = 0; i < vocab; ++i) sum += std::exp(double(row[i] - mx) / temperature);
        std::vector<int32_t> ids(vocab);
        for (size_t i = 0; i < vocab; ++i) ids[i] = int32_t(i);
        const size_t c = std::min(k_children, vocab);
        std::partial_sort(ids.begin(), ids.begin() + long(c), ids.end(),
                          [&](int32_t a, int32_t b) { return row[a] > row[b] || (row[a] == row[b] && a < b); });
        for (size_t i = 0; i < c; ++i) {
            const double q = std::exp(double(row[ids[i]] - mx) / temperature) / sum;
            heap.push({logp + std::log(std::max(child_probability(i, q), 1e-300)), parent, ids[i], uint8_t(i)});
        }
    };
    push_children(logits.data(), -1, 0.0);
    const size_t wave = std::max<size_t>(1, (budget + k_waves - 1) / k_waves);
    size_t fed = 0; // tree tokens in the draft's cache
    while (d.tokens.size() < budget && !heap.empty()) {
        const size_t first = d.tokens.size();
        while (d.tokens.size() < std::min(budget, first + wave) && !heap.empty()) {
            const Candidate c = heap.top();
            heap.pop();
            d.tokens.push_back(c.token);
            d.parents.push_back(c.parent);
            logp_of.push_back(c.logp);
            ranks.push_back(c.rank);
        }
        if (d.tokens.size() >= budget) break; // the last wave's children are not wanted
        // The wave through the draft: its tokens' distributions give the next candidates.
        std::vector<int64_t> rows;
        for (size_t i = fed; i < d.tokens.size(); ++i) rows.push_back(d.parents[i] < 0 ? -1 : int64_t(base) + d.parents[i]);
        engine_.forward_tree(d.tokens.data() + fed, rows.data(), rows.size(), logits);
        for (size_t i = fed; i < d.tokens.size(); ++i) push_children(logits.data() + (i - fed) * vocab, int64_t(i), logp_of[i]);
        fed = d.tokens.size();
    }
    engine_.truncate(base); // the tree's rows go; the context stays for the next proposal
    last_tree_ = d;
    last_ranks_ = ranks;
    last_tree_at_ = context.size();
    last_context_tail_ = {context.back()};
    return d;
}

void ModelDrafter::learn(const std::vector<int32_t>& context) {
    // The context now: the last one, the path the target accepted, and its own next token.
    if (last_tree_.tokens.empty() || context.size() <= last_tree_at_ ||
        context[last_tree_at_ - 1] != last_context_tail_[0])
        return;
    const Draft& t = last_tree_;
    int64_t node = -1;
    for (size_t i = last_tree_at_; i < context.size(); ++i) {
        // Each child of a node the path reached counts for its rank; the one taken, also taken.
        int64_t taken = -1;
        for (size_t j = 0; j < t.tokens.size(); ++j) {
            if (t.parents[j] != node) continue;
            rank_tried_[last_ranks_[j]] += 1;
            if (t.tokens[j] == context[i] && taken < 0) {
                rank_taken_[last_ranks_[j]] += 1;
                taken = int64_t(j);
            }
        }
        if (taken < 0) break;
        node = taken;
    }
    last_tree_ = Draft{};
}

double ModelDrafter::child_probability(size_t rank, double q) const {
    constexpr double k_measured = 8; // times a rank was reached before its measure is trusted
    if (rank_tried_[rank] < k_measured) return q;
    return (rank_taken_[rank] + 0.5) / (rank_tried_[rank] + 1);
}

size_t DraftBudget::next(const SpecStats& s) const {
    if (!adaptive_ || s.passes < 4 || s.drafted == 0) return max_; // measure first
    const double n = double(s.passes), t_d = s.draft_s / double(s.drafted);
    // Least squares t_v(w) = t0 + t1 w, as DraftLength fits it.
    const double spread = n * s.width2 - s.width * s.width;
    double t1 = spread > 1e-9 * n * s.width2 ? (n * s.width_s - s.width * s.verify_s) / spread : 0;
    if (t1 < 0) t1 = 0;
    const double t0 = std::max(0.0, (s.verify_s - t1 * s.width) / n);
    // accepted = c ln(1 + B), least squares through 0.
    const double c = s.log_width2 > 0 ? s.accepted_log_width / s.log_width2 : 0;
    auto rate = [&](size_t b) {
        const double pass_s = std::max(t0 + t1 * double(b + 1) + double(b) * t_d, 1e-12);
        return (1 + c * std::log(1.0 + double(b))) / pass_s;
    };
    size_t best = 0;
    for (size_t b = max_; b >= 1; b /= 2)
        if (rate(b) > rate(best)) best = b;
    if (best == 0) return s.passes % 16 == 0 ? 1 : 0;
    // Every 8th pass a tree of half the size, so that the widths vary and t1 can be fitted
    // (with one width only, the pass looks as flat as a streamed target's).
    return s.passes % 8 == 7 ? std::max<size_t>(1, best / 2) : best;
}

} // namespace rabbit
