// SPDX-License-Identifier: Apache-2.0
// Chat formats. A model's chat template (tokenizer_config.json's chat_template, or
// chat_template.jinja) is recognised, not interpreted: rabbit knows the formats of the
// families it runs and writes them itself.
#pragma once

#include <optional>
#include <string>

namespace rabbit {

enum class ChatFormat { none, chatml, llama3, llama2, mistral };

struct ChatTemplate {
    ChatFormat format = ChatFormat::none;
    std::string source;         // where the template came from, for messages
    std::string default_system; // used when no system prompt is given (Qwen2.5's "You are Qwen, ...")
    bool llama31_preamble = false; // Llama 3.1+: "Cutting Knowledge Date: ..." heads the system turn
    bool date_today = false;       // ... with today's date (Llama 3.2's strftime_now) instead of 26 Jul 2024
};

const char* chat_format_name(ChatFormat f);

// Reads the template of a model directory; format none when it has no template. A template
// rabbit does not recognise is format none too, with `source` set.
ChatTemplate detect_chat_template(const std::string& dir);
ChatTemplate detect_chat_template_text(const std::string& jinja, const std::string& source);

// The prompt of one user turn, ready for the assistant's reply: the text to tokenize with no
// special tokens added (the format writes its own, BOS included where the model needs it).
std::string apply_chat_template(const ChatTemplate& t, const std::string& user, const std::optional<std::string>& system);

} // namespace rabbit
