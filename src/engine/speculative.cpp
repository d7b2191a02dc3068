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

Draft ModelDrafter::propose(const std::vector<int32_t>& context, size_t k) {
    Draft d;
    if (context.empty() || k == 0) return d;
    // The cache keeps what it shares with the context, less the last token, fed again for its
    // logits when nothing else is new.
    size_t common = 0;
    while (common < cached_.size() && common + 1 < context.size() && cached_[common] == context[common]) ++common;
    engine_.truncate(common);
    cached_.resize(common);
    const size_t fresh = context.size() - common, after = common + fresh, ctx = engine_.context();
    if (after > ctx) return d;
    k = std::min(k, ctx - after + 1); // the last draft is not fed
    const uint64_t vocab = engine_.config().vocab_size;
    for (size_t i = common; i < context.size(); ++i)
        if (context[i] < 0 || uint64_t(context[i]) >= vocab) return d; // an id of the target's padding
    std::vector<float> logits;
    engine_.forward(context.data() + common, fresh, 1, logits);
    cached_.insert(cached_.end(), context.begin() + long(common), context.end());
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

Verdict speculative_rule(const TokenDistribution& p, const TokenDistribution* q, int32_t drafted, Sampler& sampler) {
    const double px = p.of(drafted), qx = q ? q->of(drafted) : 1.0;
    // u < p/q, written so that q(x) = 0 (never drawn, but a caller may pass it) rejects.
    if (sampler.uniform() * qx < px) return {true, drafted};
    // The residual over p's ids (where q exceeds p it is 0 anyway). q looked up by id: sorted.
    std::vector<std::pair<int32_t, double>> qs;
    if (q) {
        for (size_t i = 0; i < q->ids.size(); ++i) qs.emplace_back(q->ids[i], q->p[i]);
        std::sort(qs.begin(), qs.end());
    }
    auto q_of = [&](int32_t id) {
        if (!q) return id == drafted ? 1.0 : 0.0;
        auto it = std::lower_bound(qs.begin(), qs.end(), std::make_pair(id, -1.0));
        return it != qs.end() && it->first == id ? it->second : 0.0;
    };
    TokenDistribution r;
    double sum = 0;
    for (size_t i = 0; i < p.ids.size(); ++i) {
        const double w = std::max(0.0, p.p[i] - q_of(p.ids[i]));
        if (w <= 0) continue;
        r.ids.push_back(p.ids[i]);
        r.p.push_back(w);
        sum += w;
    }
    if (sum <= 0) return {false, sampler.draw(p)}; // p equals q to rounding: nothing is left over
    return {false, sampler.draw(r)};              // discrete_distribution normalises
}

std::vector<int32_t> verify_chain(Engine& target, Sampler& sampler, const std::vector<int32_t>& history,
                                  const Draft& draft, std::vector<float>* keep) {
    RABBIT_CHECK(!history.empty(), "verify_chain without a current token");
    RABBIT_CHECK(draft.q.empty() || draft.q.size() == draft.tokens.size(), "a draft with some of its distributions");
    const size_t k = draft.tokens.size(), n = k + 1, pos = target.position();
    std::vector<int32_t> tokens;
    tokens.reserve(n);
    tokens.push_back(history.back());
    tokens.insert(tokens.end(), draft.tokens.begin(), draft.tokens.end());
    std::vector<float> logits;
    target.forward(tokens.data(), n, n, logits);
    const size_t vocab = logits.size() / n;
    const bool greedy = sampler.params().temperature <= 0.0f;

    std::vector<int32_t> h = history, out;
    std::vector<float> row(vocab);
    for (size_t i = 0; i < n; ++i) {
        // Row i: the logits after tokens[0..i], choosing what follows draft token i - 1.
        std::copy(logits.begin() + long(i * vocab), logits.begin() + long((i + 1) * vocab), row.begin());
        if (greedy) {
            const int32_t t = sampler.sample(row, h);
            out.push_back(t);
            if (i == k || t != draft.tokens[i]) break;
        } else {
            const TokenDistribution p = sampler.distribution(row, h);
            if (i == k) {
                out.push_back(sampler.draw(p));
                break;
            }
            const Verdict v = speculative_rule(p, draft.q.empty() ? nullptr : &draft.q[i], draft.tokens[i], sampler);
            out.push_back(v.token);
            if (!v.accepted) break;
        }
        h.push_back(out.back());
    }
    const size_t accepted = out.size() - 1;
    target.truncate(pos + 1 + accepted); // the rejected drafts' K/V are written over before being read
    if (keep) keep->insert(keep->end(), logits.begin(), logits.begin() + long((accepted + 1) * vocab));
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
