// SPDX-License-Identifier: Apache-2.0
// rabbit run -m DIR -p TEXT: one-shot generation, text streamed to stdout.
#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/option_checks.h"
#include "cli/progress.h"
#include "cli/run_setup.h"
#include "cli/run_prompts.h"
#include "cli/trace_option.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/timing.h"
#include "tokenizer/tokenizer.h"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstdio>
#include <functional>
#include <iostream>
#include <iterator>
#include <memory>
#include <unistd.h>

namespace rabbit {

namespace {

// The .npy format: a header naming dtype and shape, then the data, little-endian f32.
void write_npy(const std::string& path, const std::vector<float>& data, size_t rows, size_t cols) {
    std::string header = "{'descr': '<f4', 'fortran_order': False, 'shape': (" + std::to_string(rows) + ", " +
                         std::to_string(cols) + "), }";
    const size_t total = 10 + header.size() + 1;
    header.append((64 - total % 64) % 64, ' ');
    header += '\n';
    std::string out = "\x93NUMPY";
    out += char(1);
    out += char(0);
    out += char(header.size() & 0xff);
    out += char(header.size() >> 8);
    out += header;
    out.append(reinterpret_cast<const char*>(data.data()), data.size() * sizeof(float));
    write_file_atomic(path, out);
}

void add_run_options(CLI::App* sub, RunOptions& o) {
    add_session_options(sub, o);
    sub->add_option("-p,--prompt", o.prompt, "The prompt (default: read from stdin)");
    sub->add_flag("--raw", o.raw, "Use the prompt as it is, not wrapped in the model's chat template");
    sub->add_flag("--ignore-eos", o.ignore_eos, "Do not stop at end-of-sequence tokens (for measurements)");
    sub->add_option("--dump-logits", o.dump_logits,
                    "Write the logits of every prompt position and generated step to FILE (.npy, f32)");
    add_draft_options(sub, o);
    sub->add_option("--prompts", o.prompts,
                    "Generate for every line of FILE: a prompt, or {\"prompt\", \"max_tokens\", \"seed\"} (JSONL); one JSON "
                    "object per prompt on stdout")
        ->check(CLI::ExistingFile);
    positive(sub->add_option("--parallel", o.parallel, "With --prompts: sequences in flight at once, sharing each pass "
                                                       "of the weights (default 1)"),
             4096);
    sub->add_flag("--ordered", o.ordered, "With --prompts: write the objects in the file's order, not as they finish");
}

// The prompt (--prompt, else stdin) as token ids.
std::vector<int32_t> prompt_ids(const RunOptions& o, const CLI::App* sub, const SplitModel& model, const Tokenizer& tok) {
    std::string prompt = o.prompt;
    if (sub->count("--prompt") == 0) {
        if (::isatty(STDIN_FILENO)) throw Error(ExitCode::usage, "no prompt: give --prompt TEXT or pipe it on stdin");
        prompt.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
    }
    return encode_prompt(o, sub, model, tok, prompt, true);
}

} // namespace

std::vector<int32_t> encode_prompt(const RunOptions& o, const CLI::App* sub, const SplitModel& model,
                                   const Tokenizer& tok, const std::string& prompt, bool announce) {
    const std::string& dir = model.dir();
    if (!o.raw) {
        const ChatTemplate chat = detect_chat_template(dir);
        const ChatOptions options = chat_options(o, sub);
        if (options.format || !chat.jinja.empty()) {
            if (announce && options.format)
                spdlog::info("chat format: {} (--chat-format); --raw feeds the prompt as it is", chat_format_name(*options.format));
            else if (announce)
                spdlog::info("chat template: {}; --raw feeds the prompt as it is", chat.source);
            std::vector<ChatMessage> messages;
            if (sub->count("--system")) messages.push_back({"system", o.system});
            messages.push_back({"user", prompt});
            return tok.encode(render_chat(chat, messages, options), false);
        }
    }
    if (o.raw && (!o.chat_format.empty() || sub->count("--think") || sub->count("--no-think")))
        throw Error(ExitCode::usage, "--chat-format, --think and --no-think do not go with --raw");
    if (sub->count("--system"))
        throw Error(ExitCode::usage, o.raw ? "--system and --raw do not go together"
                                           : "this model has no chat template, so --system has nowhere to go");
    std::vector<int32_t> ids = tok.encode(prompt, true);
    if (ids.empty() && model.config().bos_token_id) ids.push_back(int32_t(*model.config().bos_token_id));
    return ids;
}

Command add_run_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<RunOptions>();
    CLI::App* sub = app.add_subcommand("run", "Generate text from a prompt, streamed to stdout");
    add_run_options(sub, *o);

    auto run = [o, sub, &global]() {
        const auto t0 = Clock::now();
        if (!o->dump_logits.empty()) check_writable_path(o->dump_logits); // before the work, not after it
        check_draft_options(*o, sub);
        if (o->prompts.empty() && (sub->count("--parallel") || o->ordered))
            throw Error(ExitCode::usage, "--parallel and --ordered go with --prompts");
        if (!o->prompts.empty() && !o->draft.empty())
            throw Error(ExitCode::usage, "--draft and --prompts do not go together: speculative decoding runs one sequence");
        if (!o->prompts.empty()) return run_prompts(*o, sub, global);
        start_trace(o->trace);
        const std::string dir = split_dir_for(o->dir, global);
        SplitModel model = SplitModel::open(dir);
        if (o->verify)
            for (const auto& u : model.manifest().units) model.verify_checksum(u);
        std::unique_ptr<Tokenizer> tok = load_tokenizer(dir);
        const std::vector<int32_t> ids = prompt_ids(*o, sub, model, *tok);
        GenerateOptions g = generate_options(*o, model);

        std::function<void()> report_memory;
        DraftChoice draft = start_draft(*o, model, *tok, global);
        MadeEngine made = start_engine(*o, sub, model, report_memory, 1, &draft);
        draft.apply(g, *o);
        const double load_s = seconds_since(t0);
        spdlog::debug("{} prompt tokens; sampling: temperature {}, top-k {}, top-p {}, min-p {}, repetition penalty {}",
                      ids.size(), g.sampling.temperature, g.sampling.top_k, g.sampling.top_p, g.sampling.min_p,
                      g.sampling.repetition_penalty);

        PrefillDisplay prefill; // a long prompt's progress, on a terminal
        if (stderr_is_terminal() && !global.quiet)
            made.engine->set_prefill_progress([&prefill](const PrefillProgress& p) { prefill.update(p); });
        GenerateResult r = generate(*made.engine, *tok, ids, g, [&prefill](const std::string& text) {
            prefill.clear();
            std::fwrite(text.data(), 1, text.size(), stdout);
            std::fflush(stdout);
        });
        prefill.clear();
        if (g.keep_logits) {
            const size_t vocab = model.config().vocab_size;
            write_npy(o->dump_logits, r.logits, r.logits.size() / vocab, vocab);
        }
        std::fputs("\n", stdout);
        std::fflush(stdout);
        const size_t n = r.tokens.size();
        spdlog::info("{} prompt tokens at {:.1f} tok/s; {} generated at {:.2f} tok/s ({}); load {:.2f}s",
                     r.prompt_tokens, r.prompt_tokens / std::max(r.prefill_seconds, 1e-9), n,
                     n > 1 ? double(n - 1) / std::max(r.decode_seconds, 1e-9) : 0.0, r.stop_reason, load_s);
        if (const StreamStats st = made.engine->stream_stats(); st.experts_run)
            spdlog::info("experts: {} run, {:.1f}% of them from the expert cache", st.experts_run,
                         100.0 * double(st.expert_hits) / double(st.experts_run));
        if (const SpecStats& s = r.spec; s.passes)
            spdlog::info("{:.2f} tokens per pass ({} passes; {} of {} drafts accepted); draft {:.2f} ms, verify {:.2f} ms "
                         "per pass",
                         s.tokens_per_pass(), s.passes, s.accepted, s.drafted, 1e3 * s.draft_s / double(s.passes),
                         1e3 * s.verify_s / double(s.passes));
        report_memory();
        draft = DraftChoice{};
        made = MadeEngine{}; // its last GPU spans go to the trace as it closes
        finish_trace(o->trace);
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
