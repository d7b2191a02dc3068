// SPDX-License-Identifier: Apache-2.0
#include "cli/run_prompts.h"

#include "cli/model_args.h"
#include "cli/prompts_file.h"
#include "cli/trace_option.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_writer.h"
#include "common/system.h"
#include "common/timing.h"
#include "common/units.h"
#include "engine/batch_generate.h"
#include "engine/kv_cache.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <map>

namespace rabbit {

std::string stop_name(const std::string& reason) {
    if (reason == "eos") return "eos";
    if (reason == "max tokens") return "max_tokens";
    if (reason == "stop string") return "stop";
    if (reason == "context full") return "ctx";
    return reason;
}

namespace {

// Writes one prompt's object as a line of stdout; `ordered` holds lines back until those
// before them are out.
class Output {
public:
    Output(const std::vector<PromptLine>& lines, bool ordered) : lines_(lines), ordered_(ordered) {}
    void outcome(const BatchOutcome& o) {
        JsonWriter w(false);
        w.begin_object().member("index", uint64_t(o.index)).member("prompt", lines_[o.index].prompt);
        if (!o.error.empty()) {
            w.member("error", lines_[o.index].error.empty() ? o.error : lines_[o.index].error);
        } else {
            w.member("text", o.text).member("stop", stop_name(o.stop_reason)).member("tokens", uint64_t(o.tokens.size()));
        }
        w.end_object();
        put(o.index, w.str());
    }
    void put(size_t index, const std::string& line) {
        if (!ordered_) return write(line);
        held_[index] = line;
        while (!held_.empty() && held_.begin()->first == next_) {
            write(held_.begin()->second);
            held_.erase(held_.begin());
            ++next_;
        }
    }

private:
    static void write(const std::string& line) {
        std::fputs((line + "\n").c_str(), stdout);
        std::fflush(stdout);
    }
    const std::vector<PromptLine>& lines_;
    bool ordered_;
    std::map<size_t, std::string> held_;
    size_t next_ = 0;
};

// The sequences whose KV caches fit the memory available (the CPU engine's caches are f32 in
// RAM, grown to what each sequence reaches: its prompt and max_tokens, within the context).
size_t cpu_sequences_that_fit(const ModelConfig& c, uint64_t ctx, const std::vector<BatchPrompt>& prompts) {
    uint64_t longest = 0;
    for (const BatchPrompt& p : prompts) longest = std::max<uint64_t>(longest, p.ids.size() + p.max_tokens);
    const uint64_t per_seq = kv_bytes_per_position(c, DType::f32) * std::min<uint64_t>(ctx, longest);
    const uint64_t room = kv_cache_room();
    return per_seq && room ? size_t(std::max<uint64_t>(1, room / per_seq)) : SIZE_MAX;
}

} // namespace

int run_prompts(const RunOptions& o, const CLI::App* sub, const GlobalOptions& global) {
    if (sub->count("--prompt") || !o.dump_logits.empty() || !o.draft.empty())
        throw Error(ExitCode::usage, "--prompts does not go with --prompt, --dump-logits or --draft");
    const std::vector<PromptLine> lines = parse_prompts(read_text_file(o.prompts), o.prompts);
    const std::string dir = split_dir_for(o.dir, global);
    SplitModel model = SplitModel::open(dir);
    if (o.verify)
        for (const auto& u : model.manifest().units) model.verify_checksum(u);
    std::unique_ptr<Tokenizer> tok = load_tokenizer(dir);
    const GenerateOptions g = generate_options(o, model);
    Output out(lines, o.ordered);

    std::vector<BatchPrompt> prompts;
    size_t failed = 0;
    for (const PromptLine& l : lines) {
        std::string error = l.error;
        BatchPrompt p;
        p.index = l.index;
        p.max_tokens = l.max_tokens.value_or(o.max_tokens);
        p.seed = l.seed.value_or(o.seed);
        if (error.empty()) try {
                p.ids = encode_prompt(o, sub, model, *tok, l.prompt, prompts.empty());
            } catch (const Error& e) {
                error = o.prompts + ":" + std::to_string(l.line) + ": " + e.what();
            }
        if (!error.empty()) {
            spdlog::error("{}", error);
            ++failed;
            BatchOutcome bad;
            bad.index = l.index;
            bad.error = error;
            out.outcome(bad);
            continue;
        }
        prompts.push_back(std::move(p));
    }
    if (prompts.empty()) {
        spdlog::error("{}: no prompt to run", o.prompts);
        return int(ExitCode::bad_input);
    }

    // The context the prompts need, unless --ctx sets it: the KV caches are planned for it.
    RunOptions eo = o;
    if (!sub->count("--ctx")) {
        uint64_t longest = 0;
        for (const BatchPrompt& p : prompts) longest = std::max<uint64_t>(longest, p.ids.size() + p.max_tokens);
        eo.ctx = std::min<uint64_t>(model.config().max_context(), (longest + 255) / 256 * 256);
    }
    const size_t want = std::min(o.parallel, prompts.size());
    std::function<void()> report_memory;
    MadeEngine made = start_engine(eo, sub, model, report_memory, want);
    Engine& engine = *made.engine;
    size_t parallel = std::min(want, engine.max_slots()); // the CUDA engine said so if it lowered them
    if (made.cpu && cpu_sequences_that_fit(model.config(), engine.context(), prompts) < parallel) {
        parallel = cpu_sequences_that_fit(model.config(), engine.context(), prompts);
        spdlog::warn("--parallel {}: the KV caches of only {} sequences fit in memory; running {} at once", o.parallel,
                     parallel, parallel);
    }
    engine.set_slots(parallel);
    start_trace(o.trace);
    const BatchStats st = generate_batch(engine, *tok, prompts, g, [&](BatchOutcome&& r) {
        if (!r.error.empty()) {
            spdlog::error("{}:{}: {}", o.prompts, lines[r.index].line, r.error);
            ++failed;
        }
        out.outcome(r);
    });
    spdlog::info("{} prompts, {} at once: {} prompt tokens, {} generated in {:.2f}s ({:.2f} tok/s, {} passes)",
                 prompts.size(), engine.slots(), st.prompt_tokens, st.generated, st.seconds,
                 double(st.generated) / std::max(st.seconds, 1e-9), st.passes);
    report_memory();
    made = MadeEngine{}; // its last GPU spans go to the trace as it closes
    finish_trace(o.trace);
    if (failed) spdlog::error("{} of {} prompts in {} failed", failed, lines.size(), o.prompts);
    return failed ? int(ExitCode::bad_input) : 0;
}

} // namespace rabbit
