// SPDX-License-Identifier: Apache-2.0
// rabbit tokenize -m DIR: text on stdin, one line at a time, to ids on stdout (or back).
#include "cli/commands.h"
#include "cli/model_args.h"
#include "common/error.h"
#include "common/json_read.h"
#include "common/json_writer.h"
#include "format/gguf.h"
#include "tokenizer/chat.h"
#include "tokenizer/tokenizer.h"
#include "common/utf8.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <iostream>
#include <memory>

namespace rabbit {

namespace {

void print_ids(const Tokenizer& tok, const std::vector<int32_t>& ids, bool pieces) {
    if (pieces) {
        std::string out = "[";
        for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + json_escape(tok.piece(ids[i]));
        fmt::print("{}]\n", out);
    } else {
        fmt::print("{}\n", json_int_list(ids));
    }
    std::fflush(stdout);
}

// A --chat --jsonl line: [{"role": "user", "content": "..."}, ...].
std::vector<ChatMessage> read_conversation(const std::string& line, const std::string& where) {
    JsonDocument doc(line, where);
    std::vector<ChatMessage> messages;
    for (auto m : json_to_array(doc.root(), where, "the line (a conversation)")) {
        auto obj = json_to_object(m, where, "a message");
        auto role = json_field(obj, "role");
        auto content = json_field(obj, "content");
        if (!role || !content) throw bad_input(where, "each message needs \"role\" and \"content\"");
        std::string text = json_to_string(*content, where, "a message's content");
        if (!utf8_valid(text)) text = utf8_lossy(text);
        messages.push_back({json_to_string(*role, where, "a message's role"), std::move(text)});
    }
    if (messages.empty()) throw bad_input(where, "the conversation has no messages");
    return messages;
}

struct TokenizeOptions {
    std::string dir, system, chat_format;
    bool special = false, pieces = false, jsonl = false, decode = false, chat = false;
};

// --chat's template and options, and the checks of the options that need --chat.
ChatOptions chat_setup(const TokenizeOptions& o, const CLI::App* sub, ChatTemplate& chat) {
    ChatOptions options;
    const bool think = sub->count("--think") > 0, no_think = sub->count("--no-think") > 0;
    if (!o.chat) {
        if (!o.system.empty() || !o.chat_format.empty() || think || no_think)
            throw Error(ExitCode::usage, "--system, --chat-format, --think and --no-think need --chat");
        return options;
    }
    if (o.decode) throw Error(ExitCode::usage, "--chat and --decode do not go together");
    if (o.jsonl && !o.system.empty())
        throw Error(ExitCode::usage, "--system with --chat --jsonl: put the system turn in each conversation");
    if (think && no_think) throw Error(ExitCode::usage, "--think or --no-think, not both");
    if (think || no_think) options.enable_thinking = think;
    chat = detect_chat_template(o.dir);
    if (!o.chat_format.empty()) options.format = parse_chat_format(o.chat_format);
    if (options.format) spdlog::info("chat format: {} (--chat-format)", chat_format_name(*options.format));
    else if (!chat.jinja.empty()) spdlog::info("chat template: {}", chat.source);
    else throw unsupported(o.dir, "has no chat template: tokenize without --chat, or give --chat-format");
    return options;
}

} // namespace

Command add_tokenize_command(CLI::App& app, const GlobalOptions& global) {
    auto o = std::make_shared<TokenizeOptions>();
    CLI::App* sub = app.add_subcommand(
        "tokenize", "Read text from stdin, one line at a time, and print each line's token ids as a JSON array");
    sub->add_option("-m,--model", o->dir, "Model directory (split or Hugging Face), .gguf file or hub id ORG/NAME[@REV][:QUANT] holding the tokenizer")->required();
    sub->add_flag("--special", o->special,
                  "Add special tokens as the tokenizer's post-processor says (BOS for Llama); with --decode, keep them");
    sub->add_flag("--pieces", o->pieces, "Print the token strings instead of ids");
    sub->add_flag("--jsonl", o->jsonl,
                  "Each input line is a JSON string, so that texts can hold newlines; with --chat, a JSON array of "
                  "{\"role\", \"content\"} messages: a whole conversation");
    sub->add_flag("--decode", o->decode, "The reverse: each line is a JSON array of ids; print the text as a JSON string");
    sub->add_flag("--chat", o->chat,
                  "Render each line as a user turn (with --jsonl: each conversation) in the model's own chat template, "
                  "with the generation prompt, before tokenizing");
    sub->add_option("--system", o->system, "With --chat: the system prompt");
    sub->add_option("--chat-format", o->chat_format,
                    "With --chat: write this family's format instead of rendering the model's template")
        ->check(CLI::IsMember({"chatml", "llama3", "llama2", "mistral"}));
    sub->add_flag("--think", "With --chat: enable_thinking=true (Qwen3)");
    sub->add_flag("--no-think", "With --chat: enable_thinking=false (Qwen3)");

    auto run = [o, sub, &global]() {
        // A GGUF's tokenizer is written out by its split (into the cache on first use).
        o->dir = local_model_path(o->dir, global);
        if (looks_like_gguf(o->dir)) o->dir = split_dir_for(o->dir, global);
        std::unique_ptr<Tokenizer> tok = load_tokenizer(o->dir);
        spdlog::debug("tokenizer: {} ({} tokens)", tok->source(), tok->vocab_size());
        ChatTemplate chat;
        const ChatOptions chat_options = chat_setup(*o, sub, chat);
        std::string line;
        size_t line_no = 0;
        bool warned_utf8 = false;
        while (std::getline(std::cin, line)) {
            ++line_no;
            const std::string where = "stdin line " + std::to_string(line_no);
            if (o->decode) {
                JsonDocument doc(line, where);
                std::vector<int32_t> ids;
                for (auto v : json_to_array(doc.root(), where, "the line"))
                    ids.push_back(int32_t(json_to_int(v, where, "a token id")));
                fmt::print("{}\n", json_escape(tok->decode(ids, !o->special)));
                std::fflush(stdout);
                continue;
            }
            if (o->chat && o->jsonl) {
                const std::vector<int32_t> ids = tok->encode(render_chat(chat, read_conversation(line, where), chat_options), false);
                print_ids(*tok, ids, o->pieces);
                continue;
            }
            std::string text;
            if (o->jsonl) {
                JsonDocument doc(line, where);
                text = json_to_string(doc.root(), where, "the line");
            } else {
                text = line;
            }
            if (!utf8_valid(text)) {
                if (!warned_utf8) spdlog::warn("{} is not valid UTF-8; invalid bytes are read as U+FFFD", where);
                warned_utf8 = true;
                text = utf8_lossy(text);
            }
            if (o->chat) {
                std::vector<ChatMessage> messages;
                if (!o->system.empty()) messages.push_back({"system", o->system});
                messages.push_back({"user", text});
                text = render_chat(chat, messages, chat_options);
            }
            print_ids(*tok, tok->encode(text, o->special && !o->chat), o->pieces);
            std::fflush(stdout);
        }
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
