// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/chat.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "tokenizer/added_vocab.h"
#include "common/utf8.h"

#include <ctime>

namespace rabbit {

const char* chat_format_name(ChatFormat f) {
    switch (f) {
    case ChatFormat::none: return "none";
    case ChatFormat::chatml: return "ChatML (Qwen)";
    case ChatFormat::llama3: return "Llama 3";
    case ChatFormat::llama2: return "Llama 2 [INST] with <<SYS>>";
    case ChatFormat::mistral: return "Mistral [INST]";
    }
    return "?";
}

namespace {

// A template's fixed default system prompt: '<|im_start|>system\n' followed by literal text
// up to '<|im_end|>', written inside one Jinja string literal. The newline is the escape \n
// (Qwen2.5) or a real one (SmolLM2, whose tokenizer_config.json escapes it for JSON only).
std::string chatml_default_system(const std::string& t) {
    for (const std::string head : {"<|im_start|>system\\n", "<|im_start|>system\n"}) {
        for (size_t pos = t.find(head); pos != std::string::npos; pos = t.find(head, pos + 1)) {
            const size_t start = pos + head.size();
            const size_t end = t.find("<|im_end|>", start);
            if (end == std::string::npos) continue;
            const std::string text = t.substr(start, end - start);
            if (text.empty() || text.find_first_of("'\"{}+\n") != std::string::npos || text.find("\\n") != std::string::npos)
                continue;
            return text;
        }
    }
    return {};
}

} // namespace

ChatTemplate detect_chat_template_text(const std::string& t, const std::string& source) {
    ChatTemplate c;
    c.source = source;
    if (t.find("<|im_start|>") != std::string::npos) {
        c.format = ChatFormat::chatml;
        c.default_system = chatml_default_system(t);
    } else if (t.find("<|start_header_id|>") != std::string::npos) {
        c.format = ChatFormat::llama3;
        c.llama31_preamble = t.find("Cutting Knowledge Date") != std::string::npos;
        c.date_today = t.find("strftime_now") != std::string::npos;
    } else if (t.find("<<SYS>>") != std::string::npos) {
        c.format = ChatFormat::llama2;
    } else if (t.find("[INST]") != std::string::npos) {
        c.format = ChatFormat::mistral;
    }
    return c;
}

ChatTemplate detect_chat_template(const std::string& dir) {
    const std::string config_path = join_path(dir, "tokenizer_config.json");
    if (path_exists(config_path)) {
        JsonDocument doc(read_text_file(config_path), config_path);
        if (auto ct = json_field(doc.root_object(), "chat_template"); ct && !ct->is_null()) {
            if (ct->is_string()) return detect_chat_template_text(json_to_string(*ct, config_path, "chat_template"), config_path);
            // A list of named templates: the "default" one.
            for (auto item : json_to_array(*ct, config_path, "chat_template")) {
                auto o = json_to_object(item, config_path, "chat_template entry");
                auto name = json_field(o, "name");
                auto tpl = json_field(o, "template");
                if (name && tpl && json_to_string(*name, config_path, "name") == "default")
                    return detect_chat_template_text(json_to_string(*tpl, config_path, "template"), config_path);
            }
        }
    }
    const std::string jinja = join_path(dir, "chat_template.jinja");
    if (path_exists(jinja)) return detect_chat_template_text(read_text_file(jinja), jinja);
    const std::string json = join_path(dir, "chat_template.json");
    if (path_exists(json)) {
        JsonDocument doc(read_text_file(json), json);
        if (auto ct = json_field(doc.root_object(), "chat_template"))
            return detect_chat_template_text(json_to_string(*ct, json, "chat_template"), json);
    }
    return {};
}

namespace {

// Python's str.strip() (and Jinja's trim), which the Llama templates apply: Unicode
// whitespace and the separators U+001C..U+001F.
std::string python_strip(const std::string& s) {
    auto space = [](char32_t c) { return is_unicode_white_space(c) || (c >= 0x1C && c <= 0x1F); };
    size_t b = 0, e = s.size();
    while (b < e) {
        size_t i = b;
        if (!space(utf8_next(s, i))) break;
        b = i;
    }
    while (e > b) {
        size_t k = e - 1;
        while (k > b && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
        size_t i = k;
        if (!space(utf8_next(s, i))) break;
        e = k;
    }
    return s.substr(b, e - b);
}

} // namespace

std::string apply_chat_template(const ChatTemplate& t, const std::string& user_text,
                                const std::optional<std::string>& system_text) {
    // Llama's templates trim the messages; ChatML and Mistral's keep them as they are.
    const bool trims = t.format == ChatFormat::llama3;
    const std::string user = trims ? python_strip(user_text) : user_text;
    std::optional<std::string> system = system_text;
    if (trims && system) system = python_strip(*system);
    switch (t.format) {
    case ChatFormat::chatml: {
        std::string out;
        const std::string sys = system ? *system : t.default_system;
        if (system || !sys.empty()) out += "<|im_start|>system\n" + sys + "<|im_end|>\n";
        return out + "<|im_start|>user\n" + user + "<|im_end|>\n<|im_start|>assistant\n";
    }
    case ChatFormat::llama3: {
        std::string out = "<|begin_of_text|>";
        std::string sys = system.value_or("");
        if (t.llama31_preamble) {
            std::string date = "26 Jul 2024";
            if (t.date_today) {
                char buf[32];
                const std::time_t now = std::time(nullptr);
                std::tm tm{};
                localtime_r(&now, &tm);
                std::strftime(buf, sizeof buf, "%d %b %Y", &tm);
                date = buf;
            }
            sys = "Cutting Knowledge Date: December 2023\nToday Date: " + date + "\n\n" + sys;
        }
        if (system || t.llama31_preamble) out += "<|start_header_id|>system<|end_header_id|>\n\n" + sys + "<|eot_id|>";
        return out + "<|start_header_id|>user<|end_header_id|>\n\n" + user +
               "<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n";
    }
    case ChatFormat::llama2: {
        // The template strips the whole turn, system block included.
        const std::string turn = system ? "<<SYS>>\n" + *system + "\n<</SYS>>\n\n" + user : user;
        return "<s>[INST] " + python_strip(turn) + " [/INST]";
    }
    case ChatFormat::mistral:
        return "<s>[INST] " + (system ? *system + "\n\n" : std::string()) + user + " [/INST]";
    case ChatFormat::none: break;
    }
    RABBIT_CHECK(false, "apply_chat_template without a known format");
    return {};
}

} // namespace rabbit
