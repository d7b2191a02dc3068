// SPDX-License-Identifier: Apache-2.0
// rabbit chat -m DIR: an interactive multi-turn conversation in the model's own chat template,
// with the KV cache kept across turns (engine/chat_session.h). On a terminal, libedit gives
// line editing and history; otherwise each input line is one user turn and each answer goes to
// stdout, so that a chat can be scripted. Lines starting with / are commands.
#include "cli/chat_io.h"
#include "cli/commands.h"
#include "cli/model_args.h"
#include "cli/progress.h"
#include "cli/run_setup.h"
#include "cli/trace_option.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "common/timing.h"
#include "engine/chat_session.h"
#include "tokenizer/tokenizer.h"

#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <memory>
#include <unistd.h>

namespace rabbit {

namespace {

struct ChatCliOptions {
    RunOptions run;
    bool hide_think = false;
};

constexpr const char* k_help = "/reset  forget the conversation\n"
                               "/system TEXT  set the system prompt (/system alone: the template's default)\n"
                               "/save FILE  write the conversation as JSON\n"
                               "/load FILE  read a conversation written by /save\n"
                               "/stats  the turns' token counts and speeds\n"
                               "/bye  end the session (or Ctrl-D)";

void print_out(const std::string& s) {
    std::fwrite(s.data(), 1, s.size(), stdout);
    std::fflush(stdout);
}

// The conversation as /save writes it: {"system": TEXT or null, "messages": [{"role", "content"}...]}.
void save_chat(const ChatSession& chat, const std::string& path) {
    JsonWriter w;
    w.begin_object();
    w.key("system");
    if (chat.system()) w.value(*chat.system());
    else w.null();
    w.key("messages");
    w.begin_array();
    for (const ChatMessage& m : chat.messages()) {
        w.begin_object();
        w.key("role");
        w.value(m.role);
        w.key("content");
        w.value(m.content);
        w.end_object();
    }
    w.end_array();
    w.end_object();
    write_file_atomic(path, w.str() + "\n");
}

void load_chat(ChatSession& chat, const std::string& path) {
    JsonDocument doc(read_text_file(path), path);
    auto root = doc.root_object();
    std::optional<std::string> system;
    if (auto s = json_field(root, "system"); s && !s->is_null()) system = std::string(json_to_string(*s, path, "system"));
    auto list = json_field(root, "messages");
    simdjson::dom::array array;
    if (!list || list->get_array().get(array) != simdjson::SUCCESS)
        throw bad_input(path, "a \"messages\" array of {\"role\", \"content\"} objects");
    std::vector<ChatMessage> messages;
    for (simdjson::dom::element e : array) {
        simdjson::dom::object m;
        if (e.get_object().get(m) != simdjson::SUCCESS)
            throw bad_input(path, "each message an object with \"role\" and \"content\"");
        auto role = json_field(m, "role"), content = json_field(m, "content");
        if (!role || !content) throw bad_input(path, "each message an object with \"role\" and \"content\"");
        messages.push_back({std::string(json_to_string(*role, path, "role")),
                            std::string(json_to_string(*content, path, "content"))});
    }
    chat.set_system(system);
    chat.set_messages(std::move(messages));
}

struct TurnRecord {
    size_t prefilled, cached, generated;
    double prefill_s, decode_s;
};

void print_stats(const std::vector<TurnRecord>& turns) {
    for (size_t i = 0; i < turns.size(); ++i) {
        const TurnRecord& t = turns[i];
        std::fprintf(stderr, "turn %zu: %zu prompt tokens prefilled (%zu from the cache) at %.1f tok/s; %zu generated at %.2f tok/s\n",
                     i + 1, t.prefilled, t.cached, t.prefilled / std::max(t.prefill_s, 1e-9), t.generated,
                     t.generated > 1 ? double(t.generated - 1) / std::max(t.decode_s, 1e-9) : 0.0);
    }
    if (turns.empty()) std::fprintf(stderr, "no turns yet\n");
}

// A / command; false for /bye.
bool command(const std::string& line, ChatSession& chat, std::vector<TurnRecord>& turns) {
    const size_t sp = line.find(' ');
    const std::string name = line.substr(0, sp), arg = sp == std::string::npos ? "" : line.substr(sp + 1);
    if (name == "/bye" || name == "/exit" || name == "/quit") return false;
    if (name == "/reset") {
        chat.reset();
        turns.clear();
        spdlog::info("the conversation is reset");
    } else if (name == "/system") {
        chat.set_system(arg.empty() ? std::nullopt : std::optional<std::string>(arg));
        spdlog::info(arg.empty() ? "system prompt: the template's default" : "system prompt set");
    } else if (name == "/save" && !arg.empty()) {
        save_chat(chat, arg);
        spdlog::info("saved {} messages to {}", chat.messages().size(), arg);
    } else if (name == "/load" && !arg.empty()) {
        load_chat(chat, arg);
        spdlog::info("loaded {} messages from {}", chat.messages().size(), arg);
    } else if (name == "/stats") {
        print_stats(turns);
    } else {
        std::fprintf(stderr, "%s\n", k_help);
    }
    return true;
}

} // namespace

Command add_chat_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<ChatCliOptions>();
    CLI::App* sub = app.add_subcommand("chat", "An interactive conversation in the model's chat template (/help inside)");
    add_session_options(sub, o->run);
    add_draft_options(sub, o->run);
    sub->get_option("-n")->description("Stop each answer after this many tokens (default: the context's room)");
    sub->add_flag("--hide-think", o->hide_think, "Do not show the thinking section of answers (Qwen3, QwQ, R1)");

    auto run = [o, sub, &global]() {
        RunOptions& ro = o->run;
        check_draft_options(ro, sub);
        start_trace(ro.trace);
        const std::string dir = split_dir_for(ro.dir, global);
        SplitModel model = SplitModel::open(dir);
        if (ro.verify)
            for (const auto& u : model.manifest().units) model.verify_checksum(u);
        std::unique_ptr<Tokenizer> tok = load_tokenizer(dir);
        const ChatTemplate tmpl = detect_chat_template(dir);
        const ChatOptions copts = chat_options(ro, sub);
        if (tmpl.jinja.empty() && !copts.format)
            throw Error(ExitCode::usage, dir + " has no chat template; give --chat-format chatml|llama3|llama2|mistral");
        GenerateOptions g = generate_options(ro, model);
        std::function<void()> report_memory;
        DraftChoice draft = start_draft(ro, model, *tok, global); // its engine outlives the session's turns
        MadeEngine made = start_engine(ro, sub, model, report_memory, 1, &draft);
        if (sub->count("-n") == 0) g.max_tokens = made.engine->context();
        draft.apply(g, ro);
        ChatSession chat(*made.engine, *tok, tmpl, copts, g);
        if (sub->count("--system")) chat.set_system(ro.system);

        const bool terminal = ::isatty(STDIN_FILENO) && ::isatty(STDOUT_FILENO);
        const auto mode = o->hide_think ? ThinkFilter::Mode::hide
                                        : ::isatty(STDOUT_FILENO) ? ThinkFilter::Mode::dim : ThinkFilter::Mode::show;
        if (terminal) std::fprintf(stderr, "rabbit chat with %s: /help for commands, Ctrl-D to end\n", dir.c_str());
        PrefillDisplay prefill; // a long turn's prefill, on a terminal
        if (stderr_is_terminal() && !global.quiet)
            made.engine->set_prefill_progress([&prefill](const PrefillProgress& p) { prefill.update(p); });
        LineReader in(terminal);
        std::vector<TurnRecord> turns;
        while (auto line = in.next(">>> ")) {
            if (line->empty()) continue;
            if ((*line)[0] == '/') {
                try {
                    if (!command(*line, chat, turns)) break;
                } catch (const Error& e) {
                    std::fprintf(stderr, "error: %s\n", e.what());
                }
                continue;
            }
            // The filter starts inside a thinking section when the rendered prompt opened one.
            ThinkFilter think(mode, false);
            ChatTurn t;
            try {
                t = chat.turn(
                    *line,
                    [&](const std::string& s) {
                        prefill.clear();
                        print_out(think.push(s));
                    },
                    [&](const std::string& prompt) { think = ThinkFilter(mode, opens_thinking(prompt)); });
            } catch (const Error& e) { // a turn the template or the context refuses: the session goes on
                const ExitCode c = e.code();
                if (c != ExitCode::usage && c != ExitCode::bad_input && c != ExitCode::unsupported) throw;
                std::fprintf(stderr, "error: %s\n", e.what());
                continue;
            }
            prefill.clear();
            print_out(think.finish() + "\n");
            if (t.dropped_turns)
                spdlog::warn("the context is full: the {} oldest turn{} left the conversation", t.dropped_turns,
                             t.dropped_turns > 1 ? "s" : "");
            if (t.interrupted) spdlog::info("(stopped)");
            turns.push_back({t.result.prompt_tokens, t.cached_tokens, t.result.tokens.size(), t.result.prefill_seconds,
                             t.result.decode_seconds});
            spdlog::debug("{} prompt tokens prefilled ({} from the cache); {} generated ({})", t.result.prompt_tokens,
                          t.cached_tokens, t.result.tokens.size(), t.result.stop_reason);
            if (const SpecStats& s = t.result.spec; s.passes)
                spdlog::debug("{:.2f} tokens per pass ({} passes); draft {:.2f} ms, verify {:.2f} ms per pass",
                              s.tokens_per_pass(), s.passes, 1e3 * s.draft_s / double(s.passes),
                              1e3 * s.verify_s / double(s.passes));
            if (t.interrupted && made.cuda) { // a pass cut short leaves the GPU engine unusable: a new one
                spdlog::info("starting the GPU engine again after the interruption");
                made = MadeEngine{};
                made = start_engine(ro, sub, model, report_memory);
                if (stderr_is_terminal() && !global.quiet)
                    made.engine->set_prefill_progress([&prefill](const PrefillProgress& p) { prefill.update(p); });
                chat.set_engine(*made.engine);
            }
        }
        report_memory();
        made = MadeEngine{};
        finish_trace(ro.trace);
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
