// SPDX-License-Identifier: Apache-2.0
#include "common/json_read.h"

#include "common/error.h"

#include <cctype>
#include <set>
#include <sstream>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::element_type;

namespace {

// simdjson keeps every copy of a repeated key and finds the first; Python's json, which
// wrote and reads these files elsewhere, keeps the last. Refuse the ambiguity.
void check_unique_keys(element e, const std::string& file, int depth) {
    if (depth > 64) throw bad_input(file, "nests JSON more than 64 levels deep");
    simdjson::dom::object obj;
    simdjson::dom::array arr;
    if (!e.get_object().get(obj)) {
        std::set<std::string_view> keys;
        for (auto field : obj) {
            if (!keys.insert(field.key).second)
                throw bad_input(file, "key '" + std::string(field.key) + "' appears twice in one JSON object");
            check_unique_keys(field.value, file, depth + 1);
        }
    } else if (!e.get_array().get(arr)) {
        for (auto item : arr) check_unique_keys(item, file, depth + 1);
    }
}

} // namespace

// Integers beyond 64 bits (tokenizer_config.json's model_max_length of 1e30, written out)
// are valid JSON that simdjson's DOM refuses; read them as floats, as Python would round them.
std::string widen_big_integers(std::string_view text) {
    std::string out;
    out.reserve(text.size() + 16);
    bool in_string = false;
    for (size_t i = 0; i < text.size(); ++i) {
        const char c = text[i];
        out += c;
        if (in_string) {
            if (c == '\\' && i + 1 < text.size()) out += text[++i];
            else if (c == '"') in_string = false;
            continue;
        }
        if (c == '"') {
            in_string = true;
            continue;
        }
        if (c >= '0' && c <= '9' && (i == 0 || !(std::isalnum((unsigned char)text[i - 1]) || text[i - 1] == '.'))) {
            size_t j = i + 1;
            while (j < text.size() && text[j] >= '0' && text[j] <= '9') ++j;
            out.append(text.substr(i + 1, j - i - 1));
            const bool fraction = j < text.size() && (text[j] == '.' || text[j] == 'e' || text[j] == 'E');
            if (j - i > 19 && !fraction) out += ".0";
            i = j - 1;
        }
    }
    return out;
}

JsonDocument::JsonDocument(std::string_view text, std::string file) : file_(std::move(file)) {
    simdjson::padded_string padded(text);
    auto err = parser_.parse(padded).get(root_);
    if (err == simdjson::NUMBER_ERROR) {
        std::string widened = widen_big_integers(text);
        if (widened.size() != text.size()) {
            padded = simdjson::padded_string(widened);
            err = parser_.parse(padded).get(root_);
        }
    }
    if (err) throw bad_input(file_, std::string("is not valid JSON: ") + simdjson::error_message(err));
    check_unique_keys(root_, file_, 0);
}

simdjson::dom::object JsonDocument::root_object() const { return json_to_object(root_, file_, "the top level"); }

std::optional<element> json_field(simdjson::dom::object obj, std::string_view key) {
    element e;
    if (obj.at_key(key).get(e)) return std::nullopt;
    return e;
}

std::optional<element> json_value(simdjson::dom::object obj, std::string_view key) {
    auto e = json_field(obj, key);
    if (!e || e->is_null()) return std::nullopt;
    return e;
}

std::string json_preview(element e) {
    std::ostringstream os;
    os << e;
    std::string s = os.str();
    if (s.size() > 60) s = s.substr(0, 57) + "...";
    return s;
}

namespace {
[[noreturn]] void wrong_type(element e, const std::string& file, const std::string& what, const char* expected) {
    throw bad_input(file, what + " must be " + expected + ", got " + json_preview(e));
}
} // namespace

uint64_t json_to_uint(element e, const std::string& file, const std::string& what) {
    // Integers only, as the reference readers (serde's u64, Python's int) take them: 2.0 is not 2.
    uint64_t v;
    if (e.get_uint64().get(v)) wrong_type(e, file, what, "a non-negative integer");
    return v;
}

int64_t json_to_int(element e, const std::string& file, const std::string& what) {
    int64_t v;
    if (e.get_int64().get(v)) wrong_type(e, file, what, "an integer");
    return v;
}

double json_to_double(element e, const std::string& file, const std::string& what) {
    double v;
    if (e.get_double().get(v)) wrong_type(e, file, what, "a number");
    return v;
}

bool json_to_bool(element e, const std::string& file, const std::string& what) {
    bool v;
    if (e.get_bool().get(v)) wrong_type(e, file, what, "true or false");
    return v;
}

std::string json_to_string(element e, const std::string& file, const std::string& what) {
    std::string_view v;
    if (e.get_string().get(v)) wrong_type(e, file, what, "a string");
    return std::string(v);
}

simdjson::dom::object json_to_object(element e, const std::string& file, const std::string& what) {
    simdjson::dom::object v;
    if (e.get_object().get(v)) wrong_type(e, file, what, "an object");
    return v;
}

simdjson::dom::array json_to_array(element e, const std::string& file, const std::string& what) {
    simdjson::dom::array v;
    if (e.get_array().get(v)) wrong_type(e, file, what, "an array");
    return v;
}

} // namespace rabbit
