// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/jinja_value.h"

#include "common/json_writer.h"
#include "common/utf8.h"

#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

namespace rabbit::jinja {

Value Value::function(std::string name, Function f) {
    Value v;
    v.kind_ = Kind::function;
    v.str_ = std::move(name);
    v.fn_ = std::make_shared<Function>(std::move(f));
    return v;
}

const Value* Value::find(const std::string& key) const {
    if (!dict_) return nullptr;
    for (const auto& kv : *dict_)
        if (kv.first == key) return &kv.second;
    return nullptr;
}

const char* kind_name(Value::Kind k) {
    switch (k) {
    case Value::Kind::undefined: return "undefined";
    case Value::Kind::none: return "none";
    case Value::Kind::boolean: return "boolean";
    case Value::Kind::integer: return "integer";
    case Value::Kind::real: return "float";
    case Value::Kind::string: return "string";
    case Value::Kind::list: return "list";
    case Value::Kind::dict: return "dict";
    case Value::Kind::nspace: return "namespace";
    case Value::Kind::function: return "function";
    }
    return "?";
}

bool truthy(const Value& v) {
    switch (v.kind()) {
    case Value::Kind::undefined:
    case Value::Kind::none: return false;
    case Value::Kind::boolean:
    case Value::Kind::integer: return v.as_int() != 0;
    case Value::Kind::real: return v.as_real() != 0.0;
    case Value::Kind::string: return !v.as_string().empty();
    case Value::Kind::list: return !v.as_list().empty();
    case Value::Kind::dict: return !v.as_dict().empty();
    case Value::Kind::nspace:
    case Value::Kind::function: return true;
    }
    return false;
}

bool equal(const Value& a, const Value& b) {
    using K = Value::Kind;
    if (a.is_number() && b.is_number()) {
        if (a.kind() != K::real && b.kind() != K::real) return a.as_int() == b.as_int();
        return a.as_real() == b.as_real();
    }
    if (a.kind() != b.kind()) return false;
    switch (a.kind()) {
    case K::undefined:
    case K::none: return true;
    case K::string: return a.as_string() == b.as_string();
    case K::list: {
        const List &x = a.as_list(), &y = b.as_list();
        if (x.size() != y.size()) return false;
        for (size_t i = 0; i < x.size(); ++i)
            if (!equal(x[i], y[i])) return false;
        return true;
    }
    case K::dict: {
        // Python dicts compare without regard to order.
        const Dict &x = a.as_dict(), &y = b.as_dict();
        if (x.size() != y.size()) return false;
        for (const auto& kv : x) {
            const Value* other = b.find(kv.first);
            if (!other || !equal(kv.second, *other)) return false;
        }
        return true;
    }
    case K::nspace: return &a.as_dict() == &b.as_dict();
    default: return false;
    }
}

std::string py_float_repr(double d) {
    if (std::isnan(d)) return "nan";
    if (std::isinf(d)) return d < 0 ? "-inf" : "inf";
    // The shortest digits that read back the same double, laid out as Python does: positional
    // for exponents -4..15, else scientific with at least two exponent digits.
    char buf[64];
    int digits = 1;
    for (; digits <= 17; ++digits) {
        std::snprintf(buf, sizeof buf, "%.*e", digits - 1, d);
        if (std::strtod(buf, nullptr) == d) break;
    }
    const int exp = std::atoi(std::strchr(buf, 'e') + 1);
    if (exp < -4 || exp >= 16) return buf; // C prints "1.5e-05", "1e+16", as Python does
    std::snprintf(buf, sizeof buf, "%.*f", std::max(digits - 1 - exp, 0), d);
    std::string s = buf;
    if (s.find('.') == std::string::npos) s += ".0";
    return s;
}

namespace {

std::string repr_string(const std::string& s) {
    const char quote = (s.find('\'') != std::string::npos && s.find('"') == std::string::npos) ? '"' : '\'';
    std::string out(1, quote);
    for (unsigned char c : s) {
        if (c == '\\' || c == static_cast<unsigned char>(quote)) {
            out += '\\';
            out += char(c);
        } else if (c == '\n') {
            out += "\\n";
        } else if (c == '\r') {
            out += "\\r";
        } else if (c == '\t') {
            out += "\\t";
        } else if (c < 0x20 || c == 0x7f) {
            out += fmt::format("\\x{:02x}", c);
        } else {
            out += char(c);
        }
    }
    return out + quote;
}

// json.dumps's escapes with ensure_ascii=False are JSON's own (common/json_writer.h).
void json_string(std::string& out, const std::string& s) { out += json_escape(s); }

void json_value(std::string& out, const Value& v, int indent, bool sort_keys, int level) {
    using K = Value::Kind;
    // With an indent json.dumps puts each item on its own line and drops the space after ','.
    auto newline = [&](int lvl) {
        if (indent >= 0) out += '\n' + std::string(size_t(indent) * size_t(lvl), ' ');
    };
    const char* sep = indent >= 0 ? "," : ", ";
    switch (v.kind()) {
    case K::none: out += "null"; return;
    case K::boolean: out += v.as_bool() ? "true" : "false"; return;
    case K::integer: out += std::to_string(v.as_int()); return;
    case K::real: {
        const double d = v.as_real();
        out += std::isnan(d) ? "NaN" : std::isinf(d) ? (d < 0 ? "-Infinity" : "Infinity") : py_float_repr(d);
        return;
    }
    case K::string: json_string(out, v.as_string()); return;
    case K::list: {
        if (v.as_list().empty()) { out += "[]"; return; }
        out += '[';
        bool first = true;
        for (const Value& item : v.as_list()) {
            if (!first) out += sep;
            first = false;
            newline(level + 1);
            json_value(out, item, indent, sort_keys, level + 1);
        }
        newline(level);
        out += ']';
        return;
    }
    case K::dict: {
        if (v.as_dict().empty()) { out += "{}"; return; }
        std::vector<const std::pair<std::string, Value>*> items;
        for (const auto& kv : v.as_dict()) items.push_back(&kv);
        if (sort_keys) std::stable_sort(items.begin(), items.end(), [](auto* a, auto* b) { return a->first < b->first; });
        out += '{';
        bool first = true;
        for (const auto* kv : items) {
            if (!first) out += sep;
            first = false;
            newline(level + 1);
            json_string(out, kv->first);
            out += ": ";
            json_value(out, kv->second, indent, sort_keys, level + 1);
        }
        newline(level);
        out += '}';
        return;
    }
    default: throw std::runtime_error(std::string("tojson: a ") + kind_name(v.kind()) + " is not JSON serializable");
    }
}

} // namespace

std::string py_repr(const Value& v) {
    using K = Value::Kind;
    switch (v.kind()) {
    case K::string: return repr_string(v.as_string());
    case K::list: {
        std::string out = "[";
        for (size_t i = 0; i < v.as_list().size(); ++i) out += (i ? ", " : "") + py_repr(v.as_list()[i]);
        return out + "]";
    }
    case K::dict: {
        std::string out = "{";
        bool first = true;
        for (const auto& kv : v.as_dict()) {
            out += (first ? "" : ", ") + repr_string(kv.first) + ": " + py_repr(kv.second);
            first = false;
        }
        return out + "}";
    }
    default: return to_str(v);
    }
}

std::string to_str(const Value& v) {
    using K = Value::Kind;
    switch (v.kind()) {
    case K::undefined: return "";
    case K::none: return "None";
    case K::boolean: return v.as_bool() ? "True" : "False";
    case K::integer: return std::to_string(v.as_int());
    case K::real: return py_float_repr(v.as_real());
    case K::string: return v.as_string();
    case K::list:
    case K::dict: return py_repr(v);
    case K::nspace: return "<Namespace>";
    case K::function: return "<function " + v.function_name() + ">";
    }
    return "";
}

std::string to_json(const Value& v, int indent, bool sort_keys) {
    std::string out;
    json_value(out, v, indent, sort_keys, 0);
    return out;
}

std::vector<char32_t> code_points(const std::string& s) {
    std::vector<char32_t> out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        if (utf8_sequence_length(s, i) == 0) { // not UTF-8: one byte, as U+FFFD would lose it
            out.push_back(static_cast<unsigned char>(s[i++]));
            continue;
        }
        out.push_back(utf8_next(s, i));
    }
    return out;
}

std::string from_code_points(const std::vector<char32_t>& cps, size_t begin, size_t end) {
    std::string out;
    for (size_t i = begin; i < end; ++i) utf8_append(out, cps[i]);
    return out;
}

size_t code_point_count(const std::string& s) {
    size_t n = 0;
    for (unsigned char c : s) n += (c & 0xC0) != 0x80;
    return n;
}

bool py_is_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

} // namespace rabbit::jinja
