// SPDX-License-Identifier: Apache-2.0
#include "engine/batch_generate.h"

#include "common/error.h"
#include "common/interrupt.h"
#include "common/timing.h"
#include "engine/stop_filter.h"

#include <algorithm>
#include <memory>

namespace rabbit {

namespace {

// One sequence in flight, and what generate()'s loop keeps for it.
struct Running {
    Running(const BatchPrompt& p, const GenerateOptions& o, const Tokenizer& tok)
        : prompt(p), sampler(seeded(o.sampling, p.seed)), stream(tok, !o.print_special), stop(o.stop_strings),
          history(p.ids) {
        out.index = p.index;
        out.prompt_tokens = p.ids.size();
    }
    static SamplingParams seeded(SamplingParams s, uint64_t seed) {
        s.seed = seed;
        return s;
    }
    const BatchPrompt& prompt;
    Sampler sampler;
    StreamDecoder stream;
    StopFilter stop;
    std::vector<int32_t> history; // the prompt and the tokens generated so far
    int32_t fed = 0;              // the token the next pass runs (after the prompt's pass)
    bool prefilled = false;
    Clock::time_point admitted = Clock::now();
    BatchOutcome out;
};

// generate()'s checks on a token just chosen, in its order; true when the sequence ends.
bool take_token(Running& r, int32_t next, const GenerateOptions& o, uint64_t context) {
    r.out.tokens.push_back(next);
    r.history.push_back(next);
    if (std::find(o.stop_ids.begin(), o.stop_ids.end(), next) != o.stop_ids.end()) {
        r.out.stop_reason = "eos";
        return true;
    }
    bool stopped = false;
    r.out.text += r.stop.push(r.stream.push(next), &stopped);
    if (stopped) {
        r.out.stop_reason = "stop string";
        return true;
    }
    if (r.out.tokens.size() >= r.prompt.max_tokens) {
        r.out.stop_reason = "max tokens";
        return true;
    }
    // The fed token's position (the prompt's, then one for each generated before it).
    if (r.prompt.ids.size() + r.out.tokens.size() - 1 >= context) {
        r.out.stop_reason = "context full";
        return true;
    }
    r.fed = next;
    return false;
}

// The rest of the text, as generate() ends a sequence that no stop string ended.
void finish_text(Running& r) {
    if (r.out.stop_reason == "stop string") return;
    bool stopped = false;
    const std::string rest = r.stop.push(r.stream.finish(), &stopped);
    r.out.text += rest + (stopped ? std::string() : r.stop.flush());
    if (stopped) r.out.stop_reason = "stop string";
}

} // namespace

BatchStats generate_batch(Engine& engine, const Tokenizer& tok, const std::vector<BatchPrompt>& prompts,
                          const GenerateOptions& options, const std::function<void(BatchOutcome&&)>& on_done) {
    RABBIT_CHECK(!options.drafter && !options.keep_logits, "batched generation without a drafter or kept logits");
    BatchStats st;
    const auto t0 = Clock::now();
    std::vector<std::unique_ptr<Running>> slot(engine.slots());
    size_t next_prompt = 0;
    // Admits prompts into free slots; a prompt that cannot run ends at once, with its error.
    auto admit = [&] {
        for (size_t s = 0; s < slot.size() && next_prompt < prompts.size(); ++s) {
            while (!slot[s] && next_prompt < prompts.size()) {
                const BatchPrompt& p = prompts[next_prompt++];
                if (p.ids.empty() || p.ids.size() > engine.context() || p.max_tokens == 0) {
                    BatchOutcome o;
                    o.index = p.index;
                    o.prompt_tokens = p.ids.size();
                    if (p.max_tokens == 0) o.stop_reason = "max tokens";
                    else o.error = p.ids.empty() ? "the prompt holds no tokens"
                                                 : "the prompt is " + std::to_string(p.ids.size()) +
                                                       " tokens, longer than the context (" +
                                                       std::to_string(engine.context()) + "); shorten it or raise --ctx";
                    on_done(std::move(o));
                    continue;
                }
                engine.reset_slot(s);
                slot[s] = std::make_unique<Running>(p, options, tok);
            }
        }
    };
    std::vector<SlotTokens> seqs;
    std::vector<float> logits, row;
    const size_t vocab = engine.config().vocab_size;
    for (admit();; admit()) {
        throw_if_interrupted();
        seqs.clear();
        for (size_t s = 0; s < slot.size(); ++s) {
            if (!slot[s]) continue;
            Running& r = *slot[s];
            if (r.prefilled) seqs.push_back({s, &r.fed, 1, 1});
            else seqs.push_back({s, r.prompt.ids.data(), r.prompt.ids.size(), 1});
        }
        if (seqs.empty()) break;
        engine.forward_slots(seqs, logits);
        ++st.passes;
        for (size_t i = 0; i < seqs.size(); ++i) {
            Running& r = *slot[seqs[i].slot];
            if (!r.prefilled) {
                r.prefilled = true;
                r.out.first_token_seconds = seconds_since(r.admitted);
                st.prompt_tokens += r.prompt.ids.size();
            }
            row.assign(logits.begin() + long(i * vocab), logits.begin() + long((i + 1) * vocab));
            const int32_t next = r.sampler.sample(row, r.history);
            ++st.generated;
            if (!take_token(r, next, options, engine.context())) continue;
            finish_text(r);
            r.out.seconds = seconds_since(r.admitted);
            on_done(std::move(r.out));
            slot[seqs[i].slot].reset();
        }
    }
    st.seconds = seconds_since(t0);
    return st;
}

} // namespace rabbit
