// SPDX-License-Identifier: Apache-2.0
// Chat prompts. A model's own chat template (tokenizer_config.json's chat_template, a GGUF's
// tokenizer.chat_template, which the split writes there, or chat_template.jinja) is rendered by
// rabbit's Jinja interpreter (tokenizer/jinja.h) exactly as transformers' apply_chat_template
// renders it. The family writers (ChatML, Llama 3, Llama 2, Mistral) remain as the fallback that
// --chat-format chooses, for a template that uses what the interpreter lacks.
#pragma once

#include "tokenizer/jinja_value.h"

#include <simdjson.h>

#include <ctime>
#include <optional>
#include <string>
#include <utility>
#include <vector>

namespace rabbit {

enum class ChatFormat { none, chatml, llama3, llama2, mistral };

struct ChatTemplate {
    ChatFormat format = ChatFormat::none; // the family the template writes (none: unrecognised or no template)
    std::string source;         // where the template came from, for messages
    std::string jinja;          // the template itself; empty when the model has none
    // The tokenizer's named special tokens (bos_token, eos_token, unk_token, pad_token...) that
    // transformers passes to the template, from tokenizer_config.json.
    std::vector<std::pair<std::string, std::string>> special_tokens;
    // For the family writers: what they take from the template.
    std::string default_system;    // used when no system prompt is given (Qwen2.5's "You are Qwen, ...")
    bool llama31_preamble = false; // Llama 3.1+: "Cutting Knowledge Date: ..." heads the system turn
    bool date_today = false;       // ... with today's date (Llama 3.2's strftime_now) instead of 26 Jul 2024
};

struct ChatMessage {
    std::string role, content;
};

struct ChatOptions {
    bool add_generation_prompt = true;
    std::optional<bool> enable_thinking;  // Qwen3's switch; absent: the template's default
    std::optional<ChatFormat> format;     // --chat-format: this family writer instead of the template
    std::optional<std::tm> now;           // strftime_now's moment (tests); absent: the local time now
};

const char* chat_format_name(ChatFormat f);
// "chatml", "llama3", "llama2" or "mistral" (--chat-format's values); nullopt otherwise.
std::optional<ChatFormat> parse_chat_format(const std::string& name);

// Reads the template of a model directory; jinja empty and format none when it has none.
ChatTemplate detect_chat_template(const std::string& dir);
ChatTemplate detect_chat_template_text(const std::string& jinja, const std::string& source);

// The conversation as the text to tokenize with no special tokens added (the template writes
// its own, BOS included where the model needs it). With options.format, or a model without a
// template, a family writer writes it (an error when there is neither). A template using what
// the interpreter lacks is unsupported, naming the construct and --chat-format; a template's
// raise_exception is bad_input with its message.
std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, const ChatOptions& options);
// The same over a whole context (messages with tool calls, tools, documents...); the template's
// special tokens, strftime_now and enable_thinking are added to it. Tests use it.
std::string render_chat_context(const ChatTemplate& t, jinja::Dict context, const ChatOptions& options);

// One user turn, with an optional system prompt, in a family's format.
std::string apply_chat_template(const ChatTemplate& t, const std::string& user, const std::optional<std::string>& system);
// A conversation in a family's format (the fallback writers).
std::string write_chat_format(const ChatTemplate& t, ChatFormat f, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt, const std::tm& now);

// A JSON value (a message, a list of messages, tools) as a template value.
jinja::Value jinja_value_from_json(simdjson::dom::element e);

} // namespace rabbit
