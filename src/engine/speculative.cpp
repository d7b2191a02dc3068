// SPDX-License-Identifier: Apache-2.0
#include "engine/speculative.h"

#include "common/error.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <utility>

namespace rabbit {

Draft NgramDrafter::propose(const std::vector<int32_t>& context, size_t k) {
    Draft d;
    const size_t len = context.size();
    if (k == 0) return d;
    for (size_t n = std::min(max_n_, len > 0 ? len - 1 : 0); n >= 1; --n) {
        const int32_t* tail = context.data() + (len - n);
        // The most recent earlier occurrence: starting at s, followed by at least one token.
        for (size_t s = len - n; s-- > 0;) {
            if (!std::equal(tail, tail + n, context.data() + s)) continue;
            const size_t from = s + n, to = std::min(len, from + k);
            d.tokens.assign(context.begin() + long(from), context.begin() + long(to));
            return d;
        }
    }
    return d;
}

ModelDrafter::ModelDrafter(Engine& engine, const SamplingParams& sampling)
    : engine_(engine), sampler_([&] {
          SamplingParams p = sampling;
          p.seed = sampling.seed ^ 0x9e3779b97f4a7c15ull; // its own stream, not a copy of the target's
          return p;
      }()),
      greedy_(sampling.temperature <= 0.0f) {
    engine_.reset();
}

bool ModelDrafter::follow(const std::vector<int32_t>& context, std::vector<float>& logits) {
    // The cache keeps what it shares with the context, less the last token, fed again for its
    // logits when nothing else is new.
    size_t common = 0;
    while (common < cached_.size() && common + 1 < context.size() && cached_[common] == context[common]) ++common;
    engine_.truncate(common);
    cached_.resize(common);
    if (context.size() > engine_.context()) return false;
    const uint64_t vocab = engine_.config().vocab_size;
    for (size_t i = common; i < context.size(); ++i)
        if (context[i] < 0 || uint64_t(context[i]) >= vocab) return false; // an id of the target's padding
    engine_.forward(context.data() + common, context.size() - common, 1, logits);
    cached_.insert(cached_.end(), context.begin() + long(common), context.end());
    return true;
}

Draft ModelDrafter::propose(const std::vector<int32_t>& context, size_t k) {
    Draft d;
    if (context.empty() || k == 0) return d;
    std::vector<float> logits;
    if (!follow(context, logits)) return d;
    k = std::min(k, size_t(engine_.context()) - context.size() + 1); // the last draft is not fed
    std::vector<int32_t> history = context;
    for (size_t i = 0; i < k; ++i) {
        int32_t t;
        if (greedy_) {
            t = sampler_.sample(logits, history);
        } else {
            d.q.push_back(sampler_.distribution(logits, history));
            t = sampler_.draw(d.q.back());
        }
        d.tokens.push_back(t);
        history.push_back(t);
        if (i + 1 == k) break;
        engine_.forward(&t, 1, 1, logits);
        cached_.push_back(t);
    }
    return d;
}

bool Draft::chain() const {
    for (size_t i = 0; i < parents.size(); ++i)
        if (parents[i] != int64_t(i) - 1) return false;
    return true;
}

namespace {

// r <- max(0, r - q) normalised; q null: a point mass at x. False when nothing is left over
// (r was q, to rounding).
bool subtract(TokenDistribution& r, const TokenDistribution* q, int32_t x) {
    std::vector<std::pair<int32_t, double>> qs; // q looked up by id: sorted
    if (q) {
        for (size_t i = 0; i < q->ids.size(); ++i) qs.emplace_back(q->ids[i], q->p[i]);
        std::sort(qs.begin(), qs.end());
    }
    auto q_of = [&](int32_t id) {
        if (!q) return id == x ? 1.0 : 0.0;
        auto it = std::lower_bound(qs.begin(), qs.end(), std::make_pair(id, -1.0));
        return it != qs.end() && it->first == id ? it->second : 0.0;
    };
    TokenDistribution out;
    double sum = 0;
    for (size_t i = 0; i < r.ids.size(); ++i) {
        const double w = std::max(0.0, r.p[i] - q_of(r.ids[i]));
        if (w <= 0) continue;
        out.ids.push_back(r.ids[i]);
        out.p.push_back(w);
        sum += w;
    }
    if (sum <= 0) return false;
    for (double& w : out.p) w /= sum;
    r = std::move(out);
    return true;
}

} // namespace

Verdict multi_draft_rule(const TokenDistribution& p, const std::vector<int32_t>& candidates,
                         const std::vector<const TokenDistribution*>& q, Sampler& sampler) {
    RABBIT_CHECK(q.size() == candidates.size(), "multi_draft_rule with a q per candidate");
    TokenDistribution r = p;
    for (size_t i = 0; i < candidates.size(); ++i) {
        const int32_t x = candidates[i];
        const double rx = r.of(x), qx = q[i] ? q[i]->of(x) : 1.0;
        // u < r/q, written so that q(x) = 0 (never drawn, but a caller may pass it) rejects.
        if (sampler.uniform() * qx < rx) return {true, x, i};
        if (!subtract(r, q[i], x)) return {false, sampler.draw(p), 0}; // p equals q to rounding
    }
    return {false, sampler.draw(r), 0};
}

Verdict speculative_rule(const TokenDistribution& p, const TokenDistribution* q, int32_t drafted, Sampler& sampler) {
    return multi_draft_rule(p, {drafted}, {q}, sampler);
}

std::vector<int32_t> verify_draft(Engine& target, Sampler& sampler, const std::vector<int32_t>& history,
                                  const Draft& draft, std::vector<float>* keep) {
    RABBIT_CHECK(!history.empty(), "verify_draft without a current token");
    RABBIT_CHECK(draft.q.empty() || draft.q.size() == draft.tokens.size(), "a draft with some of its distributions");
    RABBIT_CHECK(draft.parents.empty() || draft.parents.size() == draft.tokens.size(), "a draft tree with some of its parents");
    const size_t k = draft.tokens.size(), n = k + 1, pos = target.position();
    const bool chain = draft.chain();
    // Node 0 is the current token, node i + 1 draft token i; each node's children in draft order.
    std::vector<int32_t> tokens = {history.back()};
    tokens.insert(tokens.end(), draft.tokens.begin(), draft.tokens.end());
    std::vector<std::vector<size_t>> children(n);
    std::vector<int64_t> rows = {-1}; // forward_tree's parents: cache rows
    for (size_t i = 0; i < k; ++i) {
        const int64_t parent = chain ? int64_t(i) - 1 : draft.parents[i];
        RABBIT_CHECK(parent >= -1 && parent < int64_t(i), "a draft tree token's parent must come before it");
        children[size_t(parent + 1)].push_back(i + 1);
        rows.push_back(int64_t(pos) + parent + 1);
    }
    std::vector<float> logits;
    if (chain) target.forward(tokens.data(), n, n, logits);
    else target.forward_tree(tokens.data(), rows.data(), n, logits);
    const size_t vocab = logits.size() / n;
    const bool greedy = sampler.params().temperature <= 0.0f;

    std::vector<int32_t> h = history, out;
    std::vector<size_t> path = {0};
    std::vector<float> row(vocab);
    for (size_t node = 0;;) {
        // The logits after the path to `node`, choosing what follows it.
        std::copy(logits.begin() + long(node * vocab), logits.begin() + long((node + 1) * vocab), row.begin());
        const std::vector<size_t>& kids = children[node];
        std::vector<int32_t> candidates;
        std::vector<const TokenDistribution*> qs;
        for (size_t c : kids) {
            candidates.push_back(tokens[c]);
            qs.push_back(draft.q.empty() ? nullptr : &draft.q[c - 1]);
        }
        size_t next = 0; // a child accepted, or 0
        if (greedy) {
            out.push_back(sampler.sample(row, h));
            for (size_t c : kids)
                if (tokens[c] == out.back()) next = c;
        } else {
            const TokenDistribution p = sampler.distribution(row, h);
            const Verdict v = kids.empty() ? Verdict{false, sampler.draw(p), 0} : multi_draft_rule(p, candidates, qs, sampler);
            out.push_back(v.token);
            if (v.accepted) next = kids[v.index];
        }
        if (next == 0) break;
        path.push_back(next);
        h.push_back(out.back());
        node = next;
    }
    if (chain) target.truncate(pos + path.size()); // the rejected drafts' K/V are written over before being read
    else target.keep_rows(pos, path);
    if (keep)
        for (size_t node : path) keep->insert(keep->end(), logits.begin() + long(node * vocab), logits.begin() + long((node + 1) * vocab));
    return out;
}

void SpecStats::add_pass(size_t drafts, size_t accepted_drafts, double draft_seconds, double verify_seconds) {
    ++passes;
    drafted += drafts;
    accepted += accepted_drafts;
    draft_s += draft_seconds;
    verify_s += verify_seconds;
    const double w = double(drafts + 1);
    width += w, width2 += w * w, width_s += w * verify_seconds;
    const double lw = std::log(w);
    log_width2 += lw * lw, accepted_log_width += double(accepted_drafts) * lw;
}

size_t DraftLength::next(const SpecStats& s) const {
    if (!adaptive_ || s.drafted < 8 || s.passes == 0) return max_; // measure first
    // The acceptance rate with one success and one failure added, so that it is never 0 or 1.
    const double a = double(s.accepted + 1) / double(s.drafted + 2);
    const double n = double(s.passes), t_d = s.draft_s / double(s.drafted);
    // Least squares t_v(w) = t0 + t1 w; a constant where the widths do not vary (or it slopes down).
    const double spread = n * s.width2 - s.width * s.width;
    double t1 = spread > 1e-9 * n * s.width2 ? (n * s.width_s - s.width * s.verify_s) / spread : 0;
    if (t1 < 0) t1 = 0;
    const double t0 = std::max(0.0, (s.verify_s - t1 * s.width) / n);
    auto pass_s = [&](size_t k) { return std::max(t0 + t1 * double(k + 1) + double(k) * t_d, 1e-12); };
    size_t best = 0; // no draft: one token a pass
    double best_rate = 1 / pass_s(0);
    for (size_t k = 1; k <= max_; ++k) {
        const double rate = (1 - std::pow(a, double(k + 1))) / (1 - a) / pass_s(k);
        if (rate > best_rate) best_rate = rate, best = k;
    }
    return best == 0 && s.passes % 16 == 0 ? 1 : best;
}

void check_same_vocabulary(const Tokenizer& target, const std::string& target_dir, const Tokenizer& draft,
                           const std::string& draft_dir) {
    const size_t n = std::min(target.vocab_size(), draft.vocab_size());
    for (size_t id = 0; id < n; ++id) {
        const std::string a = target.piece(int32_t(id)), b = draft.piece(int32_t(id));
        if (a.empty() || b.empty() || a == b) continue; // an id one of them leaves undefined
        throw Error(ExitCode::usage, "--draft " + draft_dir + ": its vocabulary differs from the model's (" + target_dir +
                                         "): token " + std::to_string(id) + " is '" + b + "' there and '" + a +
                                         "' in the model; the draft must share the model's tokenizer");
    }
}

} // namespace rabbit
