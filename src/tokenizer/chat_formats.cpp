// SPDX-License-Identifier: Apache-2.0
// rabbit's own writers of the chat families: the fallback that --chat-format chooses when a
// model's template uses what the Jinja interpreter lacks (or a model has none). They write what
// the families' usual templates write for plain user and assistant turns.
#include "common/error.h"
#include "tokenizer/chat.h"
#include "tokenizer/jinja_builtins.h"

namespace rabbit {

namespace {

std::string strip(const std::string& s) { return jinja::py_strip(s, jinja::Value::none(), true, true); }

std::string llama3_date(const ChatTemplate& t, const std::tm& now) {
    if (!t.date_today) return "26 Jul 2024";
    char buf[32];
    std::strftime(buf, sizeof buf, "%d %b %Y", &now);
    return buf;
}

std::string chatml(const ChatTemplate& t, const std::vector<ChatMessage>& m, size_t first, bool agp) {
    std::string out;
    if (first == 1) out += "<|im_start|>system\n" + m[0].content + "<|im_end|>\n";
    else if (!t.default_system.empty()) out += "<|im_start|>system\n" + t.default_system + "<|im_end|>\n";
    for (size_t i = first; i < m.size(); ++i) out += "<|im_start|>" + m[i].role + "\n" + m[i].content + "<|im_end|>\n";
    return agp ? out + "<|im_start|>assistant\n" : out;
}

std::string llama3(const ChatTemplate& t, const std::vector<ChatMessage>& m, size_t first, bool agp, const std::tm& now) {
    // Llama's templates trim the messages.
    auto header = [](const std::string& role) { return "<|start_header_id|>" + role + "<|end_header_id|>\n\n"; };
    std::string out = "<|begin_of_text|>";
    std::string sys = first == 1 ? strip(m[0].content) : std::string();
    if (t.llama31_preamble) sys = "Cutting Knowledge Date: December 2023\nToday Date: " + llama3_date(t, now) + "\n\n" + sys;
    if (first == 1 || t.llama31_preamble) out += header("system") + sys + "<|eot_id|>";
    for (size_t i = first; i < m.size(); ++i) out += header(m[i].role) + strip(m[i].content) + "<|eot_id|>";
    return agp ? out + header("assistant") : out;
}

void check_roles(const std::vector<ChatMessage>& m, size_t first, const char* family) {
    for (size_t i = first; i < m.size(); ++i) {
        const char* want = (i - first) % 2 == 0 ? "user" : "assistant";
        if (m[i].role != want)
            throw Error(ExitCode::bad_input, std::string("the ") + family + " chat format needs user and assistant turns in turn after "
                                             "an optional system prompt; message " + std::to_string(i + 1) + " is '" +
                                             m[i].role + "'");
    }
}

std::string llama2(const std::vector<ChatMessage>& m, size_t first) {
    check_roles(m, first, "Llama 2");
    std::string out;
    for (size_t i = first; i < m.size(); ++i) {
        if (m[i].role == "assistant") {
            out += " " + strip(m[i].content) + " </s>";
            continue;
        }
        // The system block joins the first user turn, and the template strips the whole turn.
        const bool sys = i == first && first == 1;
        const std::string turn = sys ? "<<SYS>>\n" + m[0].content + "\n<</SYS>>\n\n" + m[i].content : m[i].content;
        out += "<s>[INST] " + strip(turn) + " [/INST]";
    }
    return out;
}

std::string mistral(const std::vector<ChatMessage>& m, size_t first) {
    check_roles(m, first, "Mistral");
    std::string out = "<s>";
    for (size_t i = first; i < m.size(); ++i) {
        if (m[i].role == "assistant") {
            out += " " + m[i].content + "</s>";
            continue;
        }
        const bool sys = i == first && first == 1;
        out += "[INST] " + (sys ? m[0].content + "\n\n" : std::string()) + m[i].content + " [/INST]";
    }
    return out;
}

} // namespace

std::string write_chat_format(const ChatTemplate& t, ChatFormat f, const std::vector<ChatMessage>& messages,
                              bool add_generation_prompt, const std::tm& now) {
    const size_t first = !messages.empty() && messages[0].role == "system" ? 1 : 0;
    switch (f) {
    case ChatFormat::chatml: return chatml(t, messages, first, add_generation_prompt);
    case ChatFormat::llama3: return llama3(t, messages, first, add_generation_prompt, now);
    case ChatFormat::llama2: return llama2(messages, first);
    case ChatFormat::mistral: return mistral(messages, first);
    case ChatFormat::none: break;
    }
    RABBIT_CHECK(false, "write_chat_format without a known format");
    return {};
}

std::string apply_chat_template(const ChatTemplate& t, const std::string& user, const std::optional<std::string>& system) {
    std::vector<ChatMessage> m;
    if (system) m.push_back({"system", *system});
    m.push_back({"user", user});
    const std::time_t clock = std::time(nullptr);
    std::tm now{};
    localtime_r(&clock, &now);
    return write_chat_format(t, t.format, m, true, now);
}

} // namespace rabbit
