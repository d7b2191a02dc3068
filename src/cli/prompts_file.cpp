// SPDX-License-Identifier: Apache-2.0
#include "cli/prompts_file.h"

#include "common/error.h"
#include "common/json_read.h"

namespace rabbit {

namespace {

// A JSON line's fields into p; throws bad_input naming what is wrong.
void read_json_line(const std::string& text, const std::string& where, PromptLine& p) {
    JsonDocument doc(text, where);
    const simdjson::dom::object o = doc.root_object();
    for (auto field : o) {
        const std::string_view k = field.key;
        if (k != "prompt" && k != "max_tokens" && k != "seed")
            throw bad_input(where, "unknown field \"" + std::string(k) + "\" (expected prompt, max_tokens, seed)");
    }
    const auto prompt = json_field(o, "prompt");
    if (!prompt) throw bad_input(where, "has no \"prompt\"");
    p.prompt = json_to_string(*prompt, where, "prompt");
    if (const auto n = json_field(o, "max_tokens"); n && !n->is_null()) p.max_tokens = size_t(json_to_uint(*n, where, "max_tokens"));
    if (const auto s = json_field(o, "seed"); s && !s->is_null()) p.seed = json_to_uint(*s, where, "seed");
}

} // namespace

std::vector<PromptLine> parse_prompts(const std::string& text, const std::string& path) {
    std::vector<PromptLine> out;
    size_t line = 0;
    for (size_t at = 0; at < text.size();) {
        size_t end = text.find('\n', at);
        if (end == std::string::npos) end = text.size();
        std::string s = text.substr(at, end - at);
        at = end + 1;
        ++line;
        if (!s.empty() && s.back() == '\r') s.pop_back();
        if (s.find_first_not_of(" \t") == std::string::npos) continue;
        PromptLine p;
        p.index = out.size();
        p.line = line;
        const std::string where = path + ":" + std::to_string(line);
        if (s[s.find_first_not_of(" \t")] != '{') {
            p.prompt = s;
        } else {
            try {
                read_json_line(s, where, p);
                if (p.prompt.empty()) throw bad_input(where, "\"prompt\" is empty");
            } catch (const Error& e) {
                p.prompt = s; // the line as it is, for its object on stdout
                p.error = e.what();
            }
        }
        out.push_back(std::move(p));
    }
    return out;
}

} // namespace rabbit
