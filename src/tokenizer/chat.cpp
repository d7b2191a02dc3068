// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/chat.h"

#include "common/error.h"
#include "common/file_io.h"
#include "common/json_read.h"
#include "tokenizer/jinja.h"

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
    c.jinja = t;
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

namespace {

// The named special tokens transformers passes to the template: a string, or an AddedToken
// object {"content": ...}.
std::vector<std::pair<std::string, std::string>> special_tokens(simdjson::dom::object config, const std::string& path) {
    std::vector<std::pair<std::string, std::string>> out;
    for (const char* name : {"bos_token", "eos_token", "unk_token", "sep_token", "pad_token", "cls_token", "mask_token"}) {
        auto v = json_field(config, name);
        if (!v || v->is_null()) continue;
        if (v->is_object()) {
            auto content = json_field(json_to_object(*v, path, name), "content");
            if (content) out.emplace_back(name, json_to_string(*content, path, std::string(name) + ".content"));
        } else {
            out.emplace_back(name, json_to_string(*v, path, name));
        }
    }
    return out;
}

// tokenizer_config.json's chat_template: a string, or a list of named templates ("default").
std::optional<std::string> config_template(simdjson::dom::object config, const std::string& path) {
    auto ct = json_field(config, "chat_template");
    if (!ct || ct->is_null()) return std::nullopt;
    if (ct->is_string()) return json_to_string(*ct, path, "chat_template");
    for (auto item : json_to_array(*ct, path, "chat_template")) {
        auto o = json_to_object(item, path, "chat_template entry");
        auto name = json_field(o, "name");
        auto tpl = json_field(o, "template");
        if (name && tpl && json_to_string(*name, path, "name") == "default") return json_to_string(*tpl, path, "template");
    }
    throw unsupported(path, "chat_template is a list of named templates without one named \"default\"");
}

} // namespace

// As transformers reads them: chat_template.jinja first, then tokenizer_config.json's
// chat_template (a GGUF's tokenizer.chat_template is written there by the split), then a
// processor's chat_template.json.
ChatTemplate detect_chat_template(const std::string& dir) {
    ChatTemplate t;
    std::vector<std::pair<std::string, std::string>> specials;
    const std::string config_path = join_path(dir, "tokenizer_config.json");
    std::optional<std::string> from_config;
    if (path_exists(config_path)) {
        JsonDocument doc(read_text_file(config_path), config_path);
        specials = special_tokens(doc.root_object(), config_path);
        from_config = config_template(doc.root_object(), config_path);
    }
    const std::string jinja = join_path(dir, "chat_template.jinja");
    const std::string json = join_path(dir, "chat_template.json");
    if (path_exists(jinja)) {
        t = detect_chat_template_text(read_text_file(jinja), jinja);
    } else if (from_config) {
        t = detect_chat_template_text(*from_config, config_path);
    } else if (path_exists(json)) {
        JsonDocument doc(read_text_file(json), json);
        if (auto ct = json_field(doc.root_object(), "chat_template"))
            t = detect_chat_template_text(json_to_string(*ct, json, "chat_template"), json);
    }
    t.special_tokens = std::move(specials);
    return t;
}

std::optional<ChatFormat> parse_chat_format(const std::string& name) {
    if (name == "chatml") return ChatFormat::chatml;
    if (name == "llama3") return ChatFormat::llama3;
    if (name == "llama2") return ChatFormat::llama2;
    if (name == "mistral") return ChatFormat::mistral;
    return std::nullopt;
}

jinja::Value jinja_value_from_json(simdjson::dom::element e) {
    using T = simdjson::dom::element_type;
    switch (e.type()) {
    case T::ARRAY: {
        jinja::List l;
        for (auto item : e.get_array()) l.push_back(jinja_value_from_json(item));
        return jinja::Value(std::move(l));
    }
    case T::OBJECT: {
        jinja::Dict d;
        for (auto field : e.get_object()) d.emplace_back(std::string(field.key), jinja_value_from_json(field.value));
        return jinja::Value(std::move(d));
    }
    case T::INT64: return jinja::Value(int64_t(e.get_int64()));
    case T::UINT64: return jinja::Value(double(uint64_t(e.get_uint64())));
    case T::DOUBLE: return jinja::Value(double(e.get_double()));
    case T::STRING: return jinja::Value(std::string(std::string_view(e.get_string())));
    case T::BOOL: return jinja::Value(bool(e.get_bool()));
    case T::NULL_VALUE: return jinja::Value::none();
    }
    return jinja::Value::none();
}

namespace {

std::tm moment(const ChatOptions& o) {
    if (o.now) return *o.now;
    const std::time_t clock = std::time(nullptr);
    std::tm now{};
    localtime_r(&clock, &now);
    return now;
}

const char* k_fallback_hint = "; --chat-format chatml|llama3|llama2|mistral writes the prompt in a family's format instead";

} // namespace

std::string render_chat_context(const ChatTemplate& t, jinja::Dict context, const ChatOptions& options) {
    const std::tm now = moment(options);
    // Like transformers: the special tokens first, so that the caller's variables win.
    jinja::Dict vars;
    for (const auto& kv : t.special_tokens) vars.emplace_back(kv.first, jinja::Value(kv.second));
    vars.emplace_back("strftime_now", jinja::Value::function("strftime_now", [now](jinja::CallArgs& a) {
                          const jinja::Value& f = a.pos.empty() ? jinja::Value() : a.pos[0];
                          if (!f.is_string()) throw Error(ExitCode::bad_input, "strftime_now needs a format string");
                          char buf[256];
                          const size_t n = std::strftime(buf, sizeof buf, f.as_string().c_str(), &now);
                          return jinja::Value(std::string(buf, n));
                      }));
    if (options.enable_thinking) vars.emplace_back("enable_thinking", jinja::Value(*options.enable_thinking));
    for (auto& kv : context) vars.emplace_back(std::move(kv));
    try {
        return jinja::Template(t.jinja, t.source).render(vars);
    } catch (const Error& e) {
        if (e.code() != ExitCode::unsupported) throw;
        throw Error(e.code(), e.what() + std::string(k_fallback_hint));
    }
}

std::string render_chat(const ChatTemplate& t, const std::vector<ChatMessage>& messages, const ChatOptions& options) {
    if (options.format) return write_chat_format(t, *options.format, messages, options.add_generation_prompt, moment(options));
    if (t.jinja.empty())
        throw unsupported(t.source.empty() ? "the model" : t.source,
                          std::string("has no chat template") + k_fallback_hint + ", or --raw feeds the text as it is");
    jinja::List list;
    for (const ChatMessage& m : messages)
        list.emplace_back(jinja::Dict{{"role", jinja::Value(m.role)}, {"content", jinja::Value(m.content)}});
    jinja::Dict context = {{"messages", jinja::Value(std::move(list))},
                           {"tools", jinja::Value::none()},
                           {"documents", jinja::Value::none()},
                           {"add_generation_prompt", jinja::Value(options.add_generation_prompt)}};
    return render_chat_context(t, std::move(context), options);
}

} // namespace rabbit
