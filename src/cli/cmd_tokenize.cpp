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

Command add_tokenize_command(CLI::App& app, const GlobalOptions& global) {
    struct Options {
        std::string dir, system;
        bool special = false, pieces = false, jsonl = false, decode = false, chat = false;
    };
    auto o = std::make_shared<Options>();
    CLI::App* sub = app.add_subcommand(
        "tokenize", "Read text from stdin, one line at a time, and print each line's token ids as a JSON array");
    sub->add_option("-m,--model", o->dir, "Model directory (split or Hugging Face) holding the tokenizer")->required();
    sub->add_flag("--special", o->special,
                  "Add special tokens as the tokenizer's post-processor says (BOS for Llama); with --decode, keep them");
    sub->add_flag("--pieces", o->pieces, "Print the token strings instead of ids");
    sub->add_flag("--jsonl", o->jsonl, "Each input line is a JSON string, so that texts can hold newlines");
    sub->add_flag("--decode", o->decode, "The reverse: each line is a JSON array of ids; print the text as a JSON string");
    sub->add_flag("--chat", o->chat, "Wrap each line as a user turn in the model's chat format before tokenizing");
    sub->add_option("--system", o->system, "With --chat: the system prompt");

    auto run = [o, &global]() {
        // A GGUF's tokenizer is written out by its split (into the cache on first use).
        if (looks_like_gguf(o->dir)) o->dir = split_dir_for(o->dir, global);
        std::unique_ptr<Tokenizer> tok = load_tokenizer(o->dir);
        spdlog::debug("tokenizer: {} ({} tokens)", tok->source(), tok->vocab_size());
        ChatTemplate chat;
        if (o->chat) {
            if (o->decode) throw Error(ExitCode::usage, "--chat and --decode do not go together");
            chat = detect_chat_template(o->dir);
            if (chat.format == ChatFormat::none)
                throw unsupported(chat.source.empty() ? o->dir : chat.source,
                                  chat.source.empty() ? "has no chat template: tokenize without --chat"
                                                      : "holds a chat template rabbit does not recognise (it knows ChatML, "
                                                        "Llama 3, Llama 2 and Mistral): tokenize without --chat");
            spdlog::info("chat format: {} (from {})", chat_format_name(chat.format), chat.source);
        } else if (!o->system.empty()) {
            throw Error(ExitCode::usage, "--system needs --chat");
        }
        std::optional<std::string> system;
        if (!o->system.empty()) system = o->system;

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
            if (o->chat) text = apply_chat_template(chat, text, system);
            const std::vector<int32_t> ids = tok->encode(text, o->special && !o->chat);
            if (o->pieces) {
                std::string out = "[";
                for (size_t i = 0; i < ids.size(); ++i) out += (i ? ", " : "") + json_escape(tok->piece(ids[i]));
                fmt::print("{}]\n", out);
            } else {
                fmt::print("{}\n", json_int_list(ids));
            }
            std::fflush(stdout);
        }
        return 0;
    };
    return {sub, run};
}

} // namespace rabbit
