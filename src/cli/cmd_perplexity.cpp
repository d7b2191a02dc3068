// SPDX-License-Identifier: Apache-2.0
// rabbit perplexity -m MODEL -f TEXT: how well a model predicts a text, exp of the mean
// negative log-likelihood of its tokens, over windows of --ctx tokens.
//
// The windows follow transformers' perplexity guide: window k starts at token k * stride and
// holds up to ctx tokens; it scores the tokens no earlier window scored, each predicted from
// the ones before it in the window. With stride = ctx (the default) the windows do not
// overlap and the first token of each is context only. Each window starts from an empty KV
// cache. The text is tokenized once, whole, with the special tokens the tokenizer adds (BOS
// for Llama), so that two models with one tokenizer score the same tokens and their
// perplexities compare: that is what scripts/perplexity.sh does across quantizations.
#include "cli/commands.h"
#include "cli/engine_choice.h"
#include "cli/model_args.h"
#include "cli/option_checks.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/system.h"
#include "common/timing.h"
#include "format/split_model.h"
#include "tokenizer/tokenizer.h"
#include "common/utf8.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <memory>

namespace rabbit {

namespace {

struct PerplexityOptions {
    std::string model, text_file, device, act_quant = "f32";
    size_t ctx = 512, stride = 0, batch = 512, threads = 0;
    bool json = false;
};

// log p(target) under the softmax of one row of logits, in double: the sum of a few thousand
// log-probabilities must not carry f32's rounding into the 1e-6 the tests compare at.
double log_softmax_at(const float* logits, size_t vocab, int32_t target) {
    double mx = -INFINITY;
    for (size_t i = 0; i < vocab; ++i) mx = std::max(mx, double(logits[i]));
    double sum = 0;
    for (size_t i = 0; i < vocab; ++i) sum += std::exp(double(logits[i]) - mx);
    return double(logits[target]) - mx - std::log(sum);
}

struct Score {
    double nll = 0;    // the sum of -log p over the scored tokens
    size_t tokens = 0; // scored
    size_t windows = 0;
};

// Scores targets [first, end) of the window [begin, end): logits of position t - 1 predict
// token t. The window goes through in parts of `batch` tokens; each part asks for the logits
// of its suffix from position first - 1 on.
void score_window(Engine& engine, const std::vector<int32_t>& ids, size_t begin, size_t first, size_t end,
                  size_t batch, Score& s) {
    engine.reset();
    const size_t vocab = engine.config().vocab_size;
    std::vector<float> logits;
    for (size_t p0 = begin; p0 < end; p0 += batch) {
        const size_t p1 = std::min(end, p0 + batch);
        const size_t from = std::max(p0, first - 1); // the first position whose logits count
        const size_t n_logits = from < p1 ? p1 - from : 0;
        engine.forward(ids.data() + p0, p1 - p0, n_logits, logits);
        for (size_t q = from; q < p1 && q + 1 < end; ++q) {
            const int32_t target = ids[q + 1];
            RABBIT_CHECK(target >= 0 && size_t(target) < vocab, "token id outside the vocabulary");
            const double lp = log_softmax_at(logits.data() + (q - from) * vocab, vocab, target);
            if (!std::isfinite(lp))
                throw Error(ExitCode::internal, fmt::format("the logits of position {} are not finite", q));
            s.nll -= lp;
            ++s.tokens;
        }
    }
    ++s.windows;
}

Score score_text(Engine& engine, const std::vector<int32_t>& ids, size_t ctx, size_t stride, size_t batch) {
    Score s;
    size_t prev_end = 0;
    for (size_t begin = 0; begin + 1 < ids.size(); begin += stride) {
        const size_t end = std::min(begin + ctx, ids.size());
        const size_t first = std::max(prev_end, begin + 1);
        if (first < end) {
            const auto t0 = Clock::now();
            score_window(engine, ids, begin, first, end, batch, s);
            spdlog::debug("window {}: tokens [{}, {}), {} scored, running perplexity {:.4f} ({:.2f}s)", s.windows, begin,
                          end, end - first, std::exp(s.nll / double(s.tokens)), seconds_since(t0));
        }
        prev_end = end;
        if (end == ids.size()) break;
    }
    return s;
}

void add_options(CLI::App* sub, PerplexityOptions& o) {
    sub->add_option("-m,--model", o.model, "A split model, a Hugging Face directory or a hub id ORG/NAME[@REV] (split into the cache on first use)")
        ->required();
    sub->add_option("-f,--file", o.text_file, "The text to score (UTF-8)")->required();
    positive(sub->add_option("--ctx", o.ctx, "Tokens per window (default 512; at least 2)"), double(size_t(1) << 24));
    zero_or_positive(sub->add_option("--stride", o.stride,
                                     "Tokens between the starts of windows (default or 0: --ctx, windows that do not "
                                     "overlap); at most --ctx"),
                     "--ctx");
    positive(sub->add_option("--batch", o.batch, "Most tokens run through the layers at once (default 512)"),
             double(size_t(1) << 20));
    zero_or_positive(sub->add_option("--threads", o.threads, "CPU threads (default or 0: every processor)"),
                     "every processor");
    sub->add_option("--device", o.device, "cpu, cuda or cuda:N (default: cuda when a usable GPU is present, else cpu)");
    add_act_quant_option(sub, o.act_quant);
    sub->add_flag("--json", o.json, "Print the result as one JSON line");
}

} // namespace

Command add_perplexity_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<PerplexityOptions>();
    CLI::App* sub = app.add_subcommand("perplexity", "Perplexity of a model on a text file, over windows of --ctx tokens");
    add_options(sub, *o);

    auto run = [o, &global]() {
        if (o->ctx < 2) throw Error(ExitCode::usage, fmt::format("--ctx {}: expected at least 2 tokens", o->ctx));
        const size_t stride = o->stride == 0 ? o->ctx : o->stride;
        if (stride > o->ctx)
            throw Error(ExitCode::usage,
                        fmt::format("--stride {}: expected at most --ctx ({}), else tokens go unscored", stride, o->ctx));
        if (!path_exists(o->text_file)) throw bad_input(o->text_file, "no such file");
        const std::string text = read_text_file(o->text_file);
        if (!utf8_valid(text)) spdlog::warn("{} is not valid UTF-8; invalid bytes are read as U+FFFD", o->text_file);

        const std::string dir = split_dir_for(o->model, global);
        SplitModel model = SplitModel::open(dir);
        std::unique_ptr<Tokenizer> tok = load_tokenizer(dir);
        const std::vector<int32_t> ids = tok->encode(text, true);
        if (ids.size() < 2)
            throw bad_input(o->text_file, fmt::format("holds {} tokens; perplexity needs at least 2", ids.size()));
        check_token_ids(ids.data(), ids.size(), model.config().vocab_size, dir);

        EngineRequest req;
        req.device = choose_device(o->device);
        req.ram_budget = default_ram_budget();
        req.ctx = std::min<uint64_t>(o->ctx, ids.size());
        req.batch = o->batch;
        req.threads = o->threads;
        req.act_quant = act_quant_of(o->act_quant);
        MadeEngine made = make_engine(model, req);

        const auto t0 = Clock::now();
        const Score s = score_text(*made.engine, ids, o->ctx, stride, o->batch);
        const double secs = seconds_since(t0);
        const double ppl = std::exp(s.nll / double(s.tokens));
        spdlog::info("{} tokens of {} scored in {} windows of up to {} tokens (stride {}) in {:.2f}s ({:.1f} tok/s)",
                     s.tokens, o->text_file, s.windows, o->ctx, stride, secs, double(ids.size()) / std::max(secs, 1e-9));
        if (o->json)
            fmt::print("{{\"perplexity\": {:.17g}, \"nll\": {:.17g}, \"tokens\": {}, \"windows\": {}, \"ctx\": {}, "
                       "\"stride\": {}, \"text_tokens\": {}}}\n",
                       ppl, s.nll, s.tokens, s.windows, o->ctx, stride, ids.size());
        else
            fmt::print("perplexity: {:.6f} ({} tokens, windows {})\n", ppl, s.tokens, s.windows);
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
