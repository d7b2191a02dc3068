// SPDX-License-Identifier: Apache-2.0
#include "speculative_helpers.h"

#include "engine/generate.h"
#include "engine/speculative.h"
#include "engine_helpers.h"
#include "genmodel.h"

#include <catch2/catch.hpp>

namespace rabbit::test {

std::string tiny_synthetic_model(const TempDir& dir, const std::string& name, const std::string& preset, uint64_t seed) {
    GenSpec spec = preset_spec(preset);
    spec.config.vocab_size = 1024;
    spec.seed = seed;
    spec.tokenizer_dir = source_dir() + "/tests/data/tokenizer/synthetic/llama3-style";
    generate_model(spec, dir / (name + "-hf"));
    return split_into(dir / (name + "-hf"), dir / name);
}

const std::vector<int32_t> k_spec_prompt = {1, 50, 7, 300, 21, 9, 64, 3, 17, 50, 7, 300, 21};

namespace {

struct Run {
    GenerateResult r;
    std::string text;
};

Run run(Engine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt, const GenerateOptions& g) {
    engine.reset();
    Run out;
    out.r = generate(engine, tok, prompt, g, [&](const std::string& t) { out.text += t; });
    return out;
}

// g drafting with d: chains of at most `size` tokens, or trees of at most `size`.
GenerateOptions drafting(DraftShape shape, GenerateOptions g, Drafter* d, size_t size, bool adaptive) {
    g.drafter = d;
    (shape == DraftShape::chain ? g.draft_max : g.draft_budget) = size;
    g.draft_adaptive = adaptive;
    return g;
}

} // namespace

double require_same_greedy(DraftShape shape, Engine& target, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                           Engine& self_draft, Engine* other_draft, size_t n) {
    const bool chain = shape == DraftShape::chain;
    GenerateOptions g;
    g.max_tokens = n;
    const Run plain = run(target, tok, prompt, g);
    const size_t pos = target.position();
    GenerateOptions keep = g; // every step's logits kept (--dump-logits)
    keep.keep_logits = true;
    const Run plain_rows = run(target, tok, prompt, keep);

    NgramDrafter ngram;
    const Run a = run(target, tok, prompt, drafting(shape, keep, &ngram, chain ? 6 : 8, true));
    INFO("ngram: " << a.r.spec.tokens_per_pass() << " tokens per pass");
    REQUIRE(a.r.tokens == plain.r.tokens);
    REQUIRE(a.text == plain.text);
    REQUIRE(target.position() == pos); // the cache ends where a plain decode leaves it
    REQUIRE(a.r.logits.size() == plain_rows.r.logits.size());
    // A product over a pass's rows rounds differently from one over a single row.
    CHECK(worst_error(a.r.logits, plain_rows.r.logits, 1e-4, 1e-3) <= 1.0);

    ModelDrafter self(self_draft, g.sampling);
    const Run b = run(target, tok, prompt, drafting(shape, keep, &self, chain ? 4 : 16, false));
    REQUIRE(b.r.tokens == plain.r.tokens);
    REQUIRE(b.text == plain.text);
    REQUIRE(target.position() == pos);
    REQUIRE(b.r.logits.size() == plain_rows.r.logits.size());
    CHECK(worst_error(b.r.logits, plain_rows.r.logits, 1e-4, 1e-3) <= 1.0);
    if (other_draft) {
        ModelDrafter other(*other_draft, g.sampling);
        const Run c = run(target, tok, prompt, drafting(shape, g, &other, chain ? 8 : 32, true));
        INFO("another model: " << c.r.spec.tokens_per_pass() << " tokens per pass");
        REQUIRE(c.r.tokens == plain.r.tokens);
        REQUIRE(c.text == plain.text);
    }
    return b.r.spec.tokens_per_pass();
}

} // namespace rabbit::test
