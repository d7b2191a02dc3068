// SPDX-License-Identifier: Apache-2.0
// The parts the normalizers, pre-tokenizers and decoders share, and the byte-level alphabet.
#include "tokenizer/components.h"

#include "common/error.h"
#include "common/json_read.h"
#include "tokenizer/components_internal.h"
#include "common/utf8.h"


namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;

namespace components_detail {

std::string type_of(object o, const std::string& file, const char* what) {
    auto t = json_field(o, "type");
    if (!t) throw bad_input(file, std::string(what) + " has no type");
    return json_to_string(*t, file, std::string(what) + " type");
}

element need(object o, const char* key, const std::string& file, const std::string& what) {
    auto e = json_field(o, key);
    if (!e) throw bad_input(file, what + " lacks '" + key + "'");
    return *e;
}

Regex make_pattern(element e, const std::string& file, const std::string& what) {
    object o = json_to_object(e, file, what + " pattern");
    if (auto s = json_field(o, "String")) return Regex::literal(json_to_string(*s, file, what + " pattern"), file);
    if (auto r = json_field(o, "Regex")) return Regex(json_to_string(*r, file, what + " pattern"), file);
    throw bad_input(file, what + " pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
}

bool optional_bool(object o, const char* key, bool fallback, const std::string& file) {
    auto e = json_field(o, key);
    if (!e || e->is_null()) return fallback;
    return json_to_bool(*e, file, key);
}

std::string replace_matches(const std::vector<std::pair<size_t, size_t>>& m, const std::string& content,
                            const std::string& text) {
    if (m.empty()) return text;
    std::string out;
    out.reserve(text.size());
    size_t last = 0;
    for (auto [b, e] : m) {
        out.append(text, last, b - last);
        out += content;
        last = e;
    }
    out.append(text, last, std::string::npos);
    return out;
}

std::string replace_all(const Regex& re, const std::string& content, const std::string& text) {
    std::vector<std::pair<size_t, size_t>> m;
    re.find_all(text, m);
    return replace_matches(m, content, text);
}

std::pair<std::string, PrependScheme> metaspace_settings(object o, const std::string& file) {
    const std::string rep = json_to_string(need(o, "replacement", file, "Metaspace"), file, "Metaspace replacement");
    size_t i = 0;
    if (rep.empty() || utf8_sequence_length(rep, 0) != rep.size() || (utf8_next(rep, i), i != rep.size()))
        throw bad_input(file, "Metaspace replacement must be one character");
    PrependScheme scheme = PrependScheme::always;
    if (auto s = json_field(o, "prepend_scheme"); s && !s->is_null()) {
        const std::string v = json_to_string(*s, file, "prepend_scheme");
        if (v == "always") scheme = PrependScheme::always;
        else if (v == "first") scheme = PrependScheme::first;
        else if (v == "never") scheme = PrependScheme::never;
        else throw bad_input(file, "unknown prepend_scheme '" + v + "'");
    }
    if (auto a = json_field(o, "add_prefix_space"); a && !a->is_null() && !json_to_bool(*a, file, "add_prefix_space")) {
        if (json_field(o, "prepend_scheme") && scheme != PrependScheme::never)
            throw bad_input(file, "Metaspace add_prefix_space does not match its prepend_scheme");
        scheme = PrependScheme::never;
    }
    return {rep, scheme};
}

} // namespace components_detail


} // namespace rabbit
