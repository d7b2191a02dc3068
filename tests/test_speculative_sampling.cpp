// SPDX-License-Identifier: Apache-2.0
// The speculative sampling rule gives the target's distribution, whatever the draft: checked
// by chi-square, on the rule alone (many draws from fixed p and q) and end to end (many seeds
// through generate() on a tiny model, against the exact distribution computed from the
// target's logits). Each check also shows that the same test rejects a wrong rule (accept
// every draft, or resample from p instead of the residual), so that it cannot pass by lack of
// power.
#include "backend/cpu/cpu_engine.h"
#include "engine/generate.h"
#include "engine/speculative.h"
#include "engine_helpers.h"
#include "format/split_model.h"
#include "genmodel.h"
#include "helpers.h"
#include "tokenizer/tokenizer.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

using namespace rabbit;

namespace {

using Counts = std::map<std::vector<int32_t>, double>; // an outcome (one token, or a few) -> count or probability

// Pearson's statistic of `counts` (n draws) against the probabilities `want`, cells expected
// fewer than 5 times pooled into one; and the value it exceeds with probability 1e-6 for its
// degrees of freedom (Wilson-Hilferty). Any outcome `want` does not allow fails outright.
struct ChiSquare {
    double stat = 0, critical = 0;
    size_t df = 0;
    bool passes() const { return stat <= critical; }
};

ChiSquare chi_square(const Counts& counts, const Counts& want, double n) {
    ChiSquare c;
    double pooled_seen = 0, pooled_expected = 0;
    size_t cells = 0;
    for (const auto& [k, p] : want) {
        const auto it = counts.find(k);
        const double seen = it == counts.end() ? 0 : it->second, expected = p * n;
        if (expected < 5) {
            pooled_seen += seen, pooled_expected += expected;
            continue;
        }
        c.stat += (seen - expected) * (seen - expected) / expected;
        ++cells;
    }
    for (const auto& [k, seen] : counts)
        if (!want.count(k) || want.at(k) <= 0) c.stat = INFINITY; // an outcome the target never gives
    if (pooled_expected > 0) {
        c.stat += (pooled_seen - pooled_expected) * (pooled_seen - pooled_expected) / pooled_expected;
        ++cells;
    }
    c.df = cells > 1 ? cells - 1 : 1;
    const double z = 4.753; // the standard normal's 1 - 1e-6 quantile
    const double d = double(c.df), h = 2.0 / (9.0 * d);
    c.critical = d * std::pow(1 - h + z * std::sqrt(h), 3);
    return c;
}

SamplingParams temperature(float t, uint64_t seed, int top_k = 0) {
    SamplingParams p;
    p.temperature = t;
    p.top_k = top_k;
    p.seed = seed;
    return p;
}

Counts as_counts(const TokenDistribution& d) {
    Counts c;
    for (size_t i = 0; i < d.ids.size(); ++i) c[{d.ids[i]}] = d.p[i];
    return c;
}

// A drafter that proposes the same tokens every time (a point mass: what ngram does).
struct FixedDrafter : Drafter {
    std::vector<int32_t> tokens;
    Draft propose(const std::vector<int32_t>&, size_t k) override {
        Draft d;
        d.tokens.assign(tokens.begin(), tokens.begin() + long(std::min(k, tokens.size())));
        return d;
    }
};

// A drafter that proposes the same tree every time: {a, b} under the current token, then c
// under a and d under b (point masses, as the ngram and model trees are).
struct FixedTreeDrafter : Drafter {
    std::vector<int32_t> tokens; // a, b, c, d
    Draft propose(const std::vector<int32_t>& context, size_t k) override { return propose_tree(context, k); }
    Draft propose_tree(const std::vector<int32_t>&, size_t) override {
        Draft d;
        d.tokens = tokens;
        d.parents = {-1, -1, 0, 1};
        return d;
    }
};

} // namespace

TEST_CASE("the multi-draft rule over siblings draws from p", "[speculative][sampling][tree]") {
    const TokenDistribution p{{0, 1, 2, 3, 4, 5}, {0.3, 0.25, 0.2, 0.15, 0.07, 0.03}};
    const TokenDistribution q{{0, 1, 2, 3, 6}, {0.05, 0.4, 0.05, 0.3, 0.2}};
    const size_t n = 100000;
    Sampler target(temperature(1, 21)), draft(temperature(1, 22));
    Counts fixed, iid, wrong;
    for (size_t i = 0; i < n; ++i) {
        // Two fixed distinct siblings (point masses), and three drawn independently from q.
        fixed[{multi_draft_rule(p, {1, 3}, {nullptr, nullptr}, target).token}] += 1;
        const std::vector<int32_t> xs = {draft.draw(q), draft.draw(q), draft.draw(q)};
        iid[{multi_draft_rule(p, xs, {&q, &q, &q}, target).token}] += 1;
        // Wrong: each sibling tested against p itself, the residual never updated.
        int32_t out = -1;
        for (int32_t x : xs)
            if (out < 0 && target.uniform() * q.of(x) < p.of(x)) out = x;
        wrong[{out >= 0 ? out : speculative_rule(p, &q, xs.back(), target).token}] += 1;
    }
    const Counts want = as_counts(p);
    const ChiSquare a = chi_square(fixed, want, n), b = chi_square(iid, want, n), w = chi_square(wrong, want, n);
    INFO("fixed siblings: " << a.stat << ", independent siblings: " << b.stat << " (critical " << b.critical
                            << "); residual not updated: " << w.stat);
    CHECK(a.passes());
    CHECK(b.passes());
    CHECK_FALSE(w.passes());
}

TEST_CASE("sampling with draft trees gives the target's distribution, over many seeds", "[speculative][sampling][tree]") {
    test::TempDir dir;
    GenSpec spec = preset_spec("tiny-qwen3");
    spec.config.vocab_size = 1024;
    spec.seed = 5;
    spec.tokenizer_dir = test::source_dir() + "/tests/data/tokenizer/synthetic/llama3-style";
    generate_model(spec, dir / "hf");
    const SplitModel model = SplitModel::open(test::split_into(dir / "hf", dir / "s"));
    const auto tok = load_tokenizer(model.dir());
    CpuEngine target(model, {}), draft_engine(model, {});
    const std::vector<int32_t> prompt = {1, 50, 7, 300, 21, 9, 64, 3};
    const float t_target = 10;
    const SamplingParams sp = temperature(t_target, 0, 8);
    auto dist_after = [&](const std::vector<int32_t>& ids) {
        std::vector<float> logits;
        target.reset();
        target.forward(ids.data(), ids.size(), 1, logits);
        return Sampler(sp).distribution(logits, ids);
    };
    // The exact distribution of the 2nd and 3rd generated tokens, t1 marginalised out.
    Counts want;
    const TokenDistribution p1 = dist_after(prompt);
    for (size_t i = 0; i < p1.ids.size(); ++i) {
        std::vector<int32_t> ids = prompt;
        ids.push_back(p1.ids[i]);
        const TokenDistribution p2 = dist_after(ids);
        for (size_t j = 0; j < p2.ids.size(); ++j) {
            std::vector<int32_t> ids3 = ids;
            ids3.push_back(p2.ids[j]);
            const TokenDistribution p3 = dist_after(ids3);
            for (size_t l = 0; l < p3.ids.size(); ++l) want[{p2.ids[j], p3.ids[l]}] += p1.p[i] * p2.p[j] * p3.p[l];
        }
    }
    SamplingParams flat = sp;
    flat.temperature = 20;
    ModelDrafter model_tree(draft_engine, flat);
    FixedTreeDrafter fixed;
    // The likeliest 2nd and 3rd tokens, so that some of the fixed tree is accepted.
    std::map<int32_t, double> second, third;
    for (const auto& [k, p] : want) second[k[0]] += p, third[k[1]] += p;
    auto top2 = [](const std::map<int32_t, double>& m) {
        std::vector<std::pair<double, int32_t>> v;
        for (const auto& [id, p] : m) v.emplace_back(p, id);
        std::sort(v.rbegin(), v.rend());
        return std::vector<int32_t>{v[0].second, v[1].second};
    };
    const std::vector<int32_t> s2 = top2(second), s3 = top2(third);
    fixed.tokens = {s2[0], s2[1], s3[0], s3[1]};
    const size_t n = 3000;
    for (Drafter* d : {static_cast<Drafter*>(&model_tree), static_cast<Drafter*>(&fixed)}) {
        INFO((d == &fixed ? "a fixed tree" : "the draft model's trees"));
        Counts pairs;
        SpecStats st;
        for (size_t seed = 0; seed < n; ++seed) {
            GenerateOptions g;
            g.max_tokens = 4;
            g.sampling = sp;
            g.sampling.seed = seed;
            g.drafter = d;
            g.draft_budget = 6;
            g.draft_adaptive = false;
            target.reset();
            const GenerateResult r = generate(target, *tok, prompt, g, [](const std::string&) {});
            REQUIRE(r.tokens.size() == 4);
            pairs[{r.tokens[1], r.tokens[2]}] += 1;
            st.drafted += r.spec.drafted, st.accepted += r.spec.accepted;
        }
        const ChiSquare c = chi_square(pairs, want, double(n));
        WARN((d == &fixed ? "fixed tree" : "model trees") << ": tokens 2 and 3: chi-square " << c.stat << ", " << c.df
                                                          << " degrees of freedom, critical " << c.critical << "; "
                                                          << st.accepted << " of " << st.drafted << " drafts accepted");
        CHECK(c.passes());
        CHECK(st.accepted > 0);
    }
}

TEST_CASE("the speculative sampling rule draws from p whatever q is", "[speculative][sampling]") {
    const TokenDistribution p{{0, 1, 2, 3, 4, 5}, {0.3, 0.25, 0.2, 0.15, 0.07, 0.03}};
    // q over-proposes 1 and 3, under-proposes 0 and 2, never proposes 4 and 5, and proposes 6,
    // which p never gives.
    const TokenDistribution q{{0, 1, 2, 3, 6}, {0.05, 0.4, 0.05, 0.3, 0.2}};
    const size_t n = 100000;
    Sampler target(temperature(1, 11)), draft(temperature(1, 12));
    Counts right, always, from_p, point, point_always;
    for (size_t i = 0; i < n; ++i) {
        const int32_t x = draft.draw(q);
        right[{speculative_rule(p, &q, x, target).token}] += 1;
        always[{x}] += 1; // wrong: accept every draft
        const Verdict v = speculative_rule(p, &q, x, target);
        from_p[{v.accepted ? v.token : target.draw(p)}] += 1; // wrong: resample from p, not the residual
        point[{speculative_rule(p, nullptr, 1, target).token}] += 1; // a point mass at 1 (ngram)
        point_always[{1}] += 1;
    }
    const Counts want = as_counts(p);
    const ChiSquare ok = chi_square(right, want, n), ok_point = chi_square(point, want, n);
    INFO("right: " << ok.stat << " (critical " << ok.critical << "), point mass: " << ok_point.stat);
    CHECK(ok.passes());
    CHECK(ok_point.passes());
    const ChiSquare bad_always = chi_square(always, want, n), bad_p = chi_square(from_p, want, n),
                    bad_point = chi_square(point_always, want, n);
    INFO("accept always: " << bad_always.stat << ", resample from p: " << bad_p.stat << ", point accepted always: "
                           << bad_point.stat);
    CHECK_FALSE(bad_always.passes());
    CHECK_FALSE(bad_p.passes());
    CHECK_FALSE(bad_point.passes());
}

TEST_CASE("sampling with drafts gives the target's distribution, over many seeds", "[speculative][sampling][engine]") {
    test::TempDir dir;
    GenSpec spec = preset_spec("tiny-qwen2");
    spec.config.vocab_size = 1024;
    spec.seed = 4;
    spec.tokenizer_dir = test::source_dir() + "/tests/data/tokenizer/synthetic/llama3-style";
    generate_model(spec, dir / "hf");
    const SplitModel model = SplitModel::open(test::split_into(dir / "hf", dir / "s"));
    const auto tok = load_tokenizer(model.dir());
    CpuEngine target(model, {}), draft_engine(model, {});
    const std::vector<int32_t> prompt = {1, 50, 7, 300, 21, 9, 64, 3};
    // 8 candidates a position: few outcomes, many draws each. The random model's logits span
    // tens (tied embeddings favour the last token), so a high temperature spreads them.
    const float t_target = 10, t_draft = 20;
    const SamplingParams sp = temperature(t_target, 0, 8);

    // The exact distribution of the 2nd and 3rd generated tokens (t1 marginalised out), and
    // what accepting every draft would give instead (q: the same model at twice the temperature).
    auto dist_after = [&](const std::vector<int32_t>& ids, float t) {
        std::vector<float> logits;
        target.reset();
        target.forward(ids.data(), ids.size(), 1, logits);
        return Sampler(temperature(t, 0, 8)).distribution(logits, ids);
    };
    Counts want, wrong;
    const TokenDistribution p1 = dist_after(prompt, t_target);
    for (size_t i = 0; i < p1.ids.size(); ++i) {
        std::vector<int32_t> ids = prompt;
        ids.push_back(p1.ids[i]);
        const TokenDistribution p2 = dist_after(ids, t_target), q2 = dist_after(ids, t_draft);
        for (size_t j = 0; j < p2.ids.size(); ++j) {
            std::vector<int32_t> ids3 = ids;
            ids3.push_back(p2.ids[j]);
            const TokenDistribution p3 = dist_after(ids3, t_target);
            for (size_t l = 0; l < p3.ids.size(); ++l) want[{p2.ids[j], p3.ids[l]}] += p1.p[i] * p2.p[j] * p3.p[l];
        }
        for (size_t j = 0; j < q2.ids.size(); ++j) wrong[{q2.ids[j]}] += p1.p[i] * q2.p[j];
    }
    Counts want2;
    for (const auto& [k, p] : want) want2[{k[0]}] += p;

    SamplingParams flat = sp;
    flat.temperature = t_draft;
    ModelDrafter model_draft(draft_engine, flat);
    FixedDrafter fixed;
    fixed.tokens = {p1.ids[0], p1.ids[1]}; // likely tokens, so that some are accepted
    const size_t n = 3000;
    for (Drafter* d : {static_cast<Drafter*>(nullptr), static_cast<Drafter*>(&model_draft), static_cast<Drafter*>(&fixed)}) {
        INFO((d == nullptr ? "no draft" : d == &fixed ? "fixed drafts" : "a draft model at twice the temperature"));
        Counts pairs, seconds;
        SpecStats st;
        for (size_t seed = 0; seed < n; ++seed) {
            GenerateOptions g;
            g.max_tokens = 4; // t1 from the prompt's pass, then t2 and t3 drafted in one pass
            g.sampling = sp;
            g.sampling.seed = seed;
            g.drafter = d;
            g.draft_max = 2;
            g.draft_adaptive = false;
            target.reset();
            const GenerateResult r = generate(target, *tok, prompt, g, [](const std::string&) {});
            REQUIRE(r.tokens.size() == 4);
            pairs[{r.tokens[1], r.tokens[2]}] += 1;
            seconds[{r.tokens[1]}] += 1;
            st.drafted += r.spec.drafted, st.accepted += r.spec.accepted;
        }
        const ChiSquare c = chi_square(pairs, want, double(n)), c2 = chi_square(seconds, want2, double(n));
        WARN("tokens 2 and 3: chi-square " << c.stat << ", " << c.df << " degrees of freedom, critical " << c.critical
                                           << "; token 2: " << c2.stat << " (critical " << c2.critical << "); "
                                           << st.accepted << " of " << st.drafted << " drafts accepted");
        CHECK(c.passes());
        CHECK(c2.passes());
        if (d) CHECK(st.accepted > st.drafted / 10); // the rule was exercised both ways
        if (d) CHECK(st.accepted < st.drafted);
        if (d == &model_draft) {
            // The same samples reject what accepting every draft gives: the test has the power.
            const ChiSquare w = chi_square(seconds, wrong, double(n));
            WARN("against accept-always's distribution: " << w.stat << " (critical " << w.critical << ")");
            CHECK_FALSE(w.passes());
        }
    }
}
