// SPDX-License-Identifier: Apache-2.0
#include "engine/generate.h"

#include "engine/stop_filter.h"

#include "common/error.h"
#include "common/interrupt.h"
#include "common/timing.h"
#include "common/trace.h"

#include <algorithm>
#include <chrono>

namespace rabbit {

namespace {

void check_prompt_fits(const Engine& engine, const std::vector<int32_t>& prompt) {
    if (prompt.empty()) throw Error(ExitCode::usage, "the prompt holds no tokens");
    if (engine.position() + prompt.size() > engine.context())
        throw Error(ExitCode::usage, "the prompt is " + std::to_string(prompt.size()) + " tokens" +
                                         (engine.position() ? " after " + std::to_string(engine.position()) + " in the cache" : "") +
                                         ", longer than the context (" + std::to_string(engine.context()) +
                                         "); shorten it or raise --ctx");
}

// The next tokens of a speculative decode: one pass of the target over `history.back()` and
// what the drafter proposes (none: a plain step): a chain no longer than the tokens still
// wanted, a tree no bigger than the cache's room.
struct DraftRoom {
    size_t rows = 0;   // rows of the KV cache beside the current token's
    size_t tokens = 0; // tokens still wanted after the next one
};

std::vector<int32_t> speculative_step(Engine& engine, Sampler& sampler, const std::vector<int32_t>& history,
                                      const GenerateOptions& options, DraftRoom limit, SpecStats& st,
                                      std::vector<float>* keep) {
    const bool tree = options.draft_budget > 0;
    size_t k = tree ? DraftBudget(options.draft_budget, options.draft_adaptive).next(st)
                    : DraftLength(options.draft_max, options.draft_adaptive).next(st);
    k = std::min(k, limit.tokens);
    if (tree) k = limit.tokens ? std::min(k, limit.rows) : 0;
    auto t0 = std::chrono::steady_clock::now();
    const Draft draft = k == 0 ? Draft{} : tree ? options.drafter->propose_tree(history, k) : options.drafter->propose(history, k);
    const double draft_s = seconds_since(t0);
    t0 = std::chrono::steady_clock::now();
    std::vector<int32_t> out;
    if (draft.tokens.empty()) {
        const int32_t fed = history.back();
        out.push_back(engine.step(&fed, 1, sampler, history, keep));
    } else {
        trace::Span span(trace::Track::tokens,
                         trace::enabled() ? "verify " + std::to_string(draft.tokens.size()) + " drafts" : "");
        out = verify_draft(engine, sampler, history, draft, keep);
    }
    st.add_pass(draft.tokens.size(), out.size() - 1, draft_s, seconds_since(t0));
    return out;
}

} // namespace

GenerateResult generate(Engine& engine, const Tokenizer& tok, const std::vector<int32_t>& prompt,
                        const GenerateOptions& options, const std::function<void(const std::string&)>& on_text) {
    GenerateResult r;
    r.prompt_tokens = prompt.size();
    check_prompt_fits(engine, prompt);
    Sampler sampler(options.sampling);
    StreamDecoder stream(tok, !options.print_special);
    StopFilter stop(options.stop_strings);
    std::vector<int32_t> history = options.preceding;
    history.insert(history.end(), prompt.begin(), prompt.end());
    std::vector<float>* keep = options.keep_logits ? &r.logits : nullptr;

    auto t0 = std::chrono::steady_clock::now();
    bool stopped = false;
    if (options.max_tokens == 0) { // the prompt alone, for its logits
        std::vector<float> logits;
        engine.forward(prompt.data(), prompt.size(), keep ? prompt.size() : 1, logits);
        if (keep) r.logits = std::move(logits);
        r.prefill_seconds = seconds_since(t0), r.stop_reason = "max tokens";
        return r;
    }
    int32_t next = 0;
    {
        trace::Span span(trace::Track::tokens, trace::enabled() ? "prompt (" + std::to_string(prompt.size()) + " tokens)" : "");
        next = engine.step(prompt.data(), prompt.size(), sampler, history, keep);
    }
    r.prefill_seconds = seconds_since(t0);
    r.at_decode = engine.stream_stats();
    t0 = std::chrono::steady_clock::now();
    // The tokens in the cache before the one just generated, as a plain decode holds them. A
    // speculative pass runs ahead of that with the tokens it accepted, queued.
    const size_t base = engine.position();
    auto fed_position = [&] { return base + r.tokens.size() - 1; };
    std::vector<int32_t> queued;
    size_t queue_at = 0;
    while (true) {
        throw_if_interrupted();
        r.tokens.push_back(next);
        history.push_back(next);
        if (std::find(options.stop_ids.begin(), options.stop_ids.end(), next) != options.stop_ids.end()) {
            r.stop_reason = "eos";
            break;
        }
        const std::string text = stop.push(stream.push(next), &stopped);
        if (!text.empty()) on_text(text);
        if (stopped) {
            r.stop_reason = "stop string";
            break;
        }
        if (r.tokens.size() >= options.max_tokens) {
            r.stop_reason = "max tokens";
            break;
        }
        if (fed_position() >= engine.context()) {
            r.stop_reason = "context full";
            break;
        }
        if (queue_at < queued.size()) {
            next = queued[queue_at++];
            continue;
        }
        if (options.drafter) {
            // Room for the drafts: in the context beside the current token, and in max_tokens.
            DraftRoom limit;
            limit.rows = engine.context() - engine.position() - 1;
            limit.tokens = std::min(limit.rows, options.max_tokens - r.tokens.size() - 1);
            queued = speculative_step(engine, sampler, history, options, limit, r.spec, keep);
            next = queued[0];
            queue_at = 1;
            continue;
        }
        const int32_t fed = next;
        trace::Span span(trace::Track::tokens, trace::enabled() ? "token " + std::to_string(r.tokens.size()) : "");
        next = engine.step(&fed, 1, sampler, history, keep);
    }
    // A stop inside a pass's accepted tokens: the cache and the logits as a plain decode leaves them.
    engine.truncate(fed_position());
    if (keep) keep->resize((prompt.size() + r.tokens.size() - 1) * size_t(engine.config().vocab_size));
    if (!stopped) {
        const std::string rest = stop.push(stream.finish(), &stopped);
        const std::string text = rest + (stopped ? std::string() : stop.flush());
        if (!text.empty()) on_text(text);
        if (stopped) r.stop_reason = "stop string";
    }
    r.decode_seconds = seconds_since(t0);
    return r;
}

} // namespace rabbit
