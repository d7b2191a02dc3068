// SPDX-License-Identifier: Apache-2.0
// Attribute and item access as jinja2's sandbox resolves them, and the str and dict methods
// chat templates call (content.split('</think>')[-1].lstrip('\n'), tool.items(), ...).
#include "tokenizer/jinja_builtins.h"

#include <algorithm>

namespace rabbit::jinja {

void runtime_error(const std::string& what) { throw TemplateError{what, 0}; }

void undefined_error(const Value& v) {
    runtime_error(v.as_string().empty() ? std::string("a value is undefined") : v.as_string() + " is undefined");
}

std::string py_type(const Value& v) {
    switch (v.kind()) {
    case Value::Kind::undefined: return "Undefined";
    case Value::Kind::none: return "NoneType";
    case Value::Kind::boolean: return "bool";
    case Value::Kind::integer: return "int";
    case Value::Kind::real: return "float";
    case Value::Kind::string: return "str";
    case Value::Kind::list: return "list";
    case Value::Kind::dict: return "dict";
    case Value::Kind::nspace: return "Namespace";
    case Value::Kind::function: return "function";
    }
    return "?";
}

const Value& arg(const CallArgs& a, size_t i, const char* name, const Value& def) {
    if (i < a.pos.size()) return a.pos[i];
    for (const auto& kv : a.kw)
        if (kv.first == name) return kv.second;
    return def;
}

List iterate(const Value& v) {
    switch (v.kind()) {
    case Value::Kind::undefined: return {};
    case Value::Kind::list: return v.as_list();
    case Value::Kind::dict:
    case Value::Kind::nspace: {
        List keys;
        for (const auto& kv : v.as_dict()) keys.emplace_back(kv.first);
        return keys;
    }
    case Value::Kind::string: {
        const std::vector<char32_t> cps = code_points(v.as_string());
        List chars;
        for (size_t i = 0; i < cps.size(); ++i) chars.emplace_back(from_code_points(cps, i, i + 1));
        return chars;
    }
    default: runtime_error("'" + py_type(v) + "' object is not iterable");
    }
}

std::string py_strip(const std::string& s, const Value& chars, bool left, bool right) {
    const std::vector<char32_t> cps = code_points(s);
    std::vector<char32_t> set;
    const bool whitespace = chars.is_none() || chars.is_undefined();
    if (!whitespace) {
        if (!chars.is_string()) runtime_error("strip arg must be None or str, not " + py_type(chars));
        set = code_points(chars.as_string());
    }
    auto strip_it = [&](char32_t c) {
        return whitespace ? py_is_space(c) : std::find(set.begin(), set.end(), c) != set.end();
    };
    size_t b = 0, e = cps.size();
    if (left)
        while (b < e && strip_it(cps[b])) ++b;
    if (right)
        while (e > b && strip_it(cps[e - 1])) --e;
    return from_code_points(cps, b, e);
}

const Value k_none = Value::none();
const Value k_undef;

namespace {

std::string need_string(const Value& v, const char* what) {
    if (!v.is_string()) runtime_error(std::string(what) + " must be a string, not " + py_type(v));
    return v.as_string();
}

// str.split / str.rsplit: sep None splits on runs of whitespace.
List py_split(const std::string& s, const Value& sep, int64_t maxsplit, bool from_right) {
    List out;
    if (sep.is_none() || sep.is_undefined()) {
        const std::vector<char32_t> cps = code_points(s);
        std::vector<std::pair<size_t, size_t>> words;
        for (size_t i = 0; i < cps.size();) {
            while (i < cps.size() && py_is_space(cps[i])) ++i;
            size_t j = i;
            while (j < cps.size() && !py_is_space(cps[j])) ++j;
            if (j > i) words.emplace_back(i, j);
            i = j;
        }
        if (maxsplit >= 0 && int64_t(words.size()) > maxsplit + 1) {
            // The rest keeps its inner whitespace (trailing whitespace too for split, as Python).
            if (from_right) {
                const size_t keep = words.size() - size_t(maxsplit);
                std::string head = py_strip(from_code_points(cps, 0, words[keep - 1].second), k_none, true, false);
                out.emplace_back(head);
                for (size_t k = keep; k < words.size(); ++k) out.emplace_back(from_code_points(cps, words[k].first, words[k].second));
                return out;
            }
            for (size_t k = 0; k < size_t(maxsplit); ++k) out.emplace_back(from_code_points(cps, words[k].first, words[k].second));
            out.emplace_back(py_strip(from_code_points(cps, words[size_t(maxsplit)].first, cps.size()), k_none, false, true));
            return out;
        }
        for (auto& w : words) out.emplace_back(from_code_points(cps, w.first, w.second));
        return out;
    }
    const std::string d = need_string(sep, "split's separator");
    if (d.empty()) runtime_error("split: empty separator");
    std::vector<std::string> parts;
    size_t start = 0;
    for (size_t p; (p = s.find(d, start)) != std::string::npos;) {
        parts.push_back(s.substr(start, p - start));
        start = p + d.size();
    }
    parts.push_back(s.substr(start));
    if (maxsplit >= 0 && int64_t(parts.size()) > maxsplit + 1) {
        std::vector<std::string> joined;
        auto join = [&](size_t b, size_t e) {
            std::string r;
            for (size_t k = b; k < e; ++k) r += (k > b ? d : "") + parts[k];
            return r;
        };
        const size_t n = parts.size(), m = size_t(maxsplit);
        if (from_right) {
            joined.push_back(join(0, n - m));
            for (size_t k = n - m; k < n; ++k) joined.push_back(parts[k]);
        } else {
            for (size_t k = 0; k < m; ++k) joined.push_back(parts[k]);
            joined.push_back(join(m, n));
        }
        parts = std::move(joined);
    }
    for (auto& p : parts) out.emplace_back(std::move(p));
    return out;
}

bool affix_match(const std::string& s, const Value& affix, bool prefix) {
    auto one = [&](const Value& a) {
        const std::string x = need_string(a, prefix ? "startswith's argument" : "endswith's argument");
        return x.size() <= s.size() && (prefix ? s.compare(0, x.size(), x) == 0 : s.compare(s.size() - x.size(), x.size(), x) == 0);
    };
    if (affix.is_list()) return std::any_of(affix.as_list().begin(), affix.as_list().end(), one);
    return one(affix);
}

std::string ascii_case(std::string s, bool upper) {
    for (char& c : s) {
        if (upper && c >= 'a' && c <= 'z') c = char(c - 32);
        if (!upper && c >= 'A' && c <= 'Z') c = char(c + 32);
    }
    return s;
}

} // namespace

std::string py_title(const std::string& s, bool only_first);

std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count) {
    if (from.empty()) {
        const std::vector<char32_t> cps = code_points(s);
        std::string out;
        for (size_t i = 0; i <= cps.size(); ++i) {
            if (count < 0 || int64_t(i) < count) out += to;
            if (i < cps.size()) out += from_code_points(cps, i, i + 1);
        }
        return out;
    }
    std::string out;
    size_t start = 0;
    for (size_t p; count != 0 && (p = s.find(from, start)) != std::string::npos; --count) {
        out += s.substr(start, p - start) + to;
        start = p + from.size();
    }
    return out + s.substr(start);
}

namespace {

Value string_method(const std::string& self, const std::string& name, CallArgs& a) {
    if (name == "startswith" || name == "endswith") return Value(affix_match(self, arg(a, 0, "prefix", k_undef), name == "startswith"));
    if (name == "split" || name == "rsplit") {
        const Value& max = arg(a, 1, "maxsplit", Value(int64_t(-1)));
        return Value(py_split(self, arg(a, 0, "sep", k_none), max.as_int(), name == "rsplit"));
    }
    if (name == "strip") return Value(py_strip(self, arg(a, 0, "chars", k_none), true, true));
    if (name == "lstrip") return Value(py_strip(self, arg(a, 0, "chars", k_none), true, false));
    if (name == "rstrip") return Value(py_strip(self, arg(a, 0, "chars", k_none), false, true));
    if (name == "lower" || name == "upper") return Value(ascii_case(self, name == "upper"));
    if (name == "title" || name == "capitalize") return Value(py_title(self, name == "capitalize"));
    if (name == "replace") {
        const Value& count = arg(a, 2, "count", Value(int64_t(-1)));
        return Value(py_replace(self, need_string(arg(a, 0, "old", k_undef), "replace's old"),
                                need_string(arg(a, 1, "new", k_undef), "replace's new"), count.as_int()));
    }
    if (name == "find" || name == "count") {
        const std::string sub = need_string(arg(a, 0, "sub", k_undef), std::string(name + "'s argument").c_str());
        if (name == "find") {
            const size_t p = self.find(sub);
            return Value(p == std::string::npos ? int64_t(-1) : int64_t(code_point_count(self.substr(0, p))));
        }
        if (sub.empty()) return Value(int64_t(code_point_count(self) + 1));
        int64_t n = 0;
        for (size_t p = self.find(sub); p != std::string::npos; p = self.find(sub, p + sub.size())) ++n;
        return Value(n);
    }
    if (name == "join") {
        std::string out;
        bool first = true;
        for (const Value& v : iterate(arg(a, 0, "iterable", k_undef))) {
            out += (first ? "" : self) + need_string(v, "join's items");
            first = false;
        }
        return Value(out);
    }
    runtime_error("str." + name + "() is not supported");
}

Value dict_method(const Value& self, const std::string& name, CallArgs& a) {
    if (name == "get") {
        const Value* v = self.find(need_string(arg(a, 0, "key", k_undef), "get's key"));
        return v ? *v : arg(a, 1, "default", k_none);
    }
    List out;
    for (const auto& kv : self.as_dict()) {
        if (name == "keys") out.emplace_back(kv.first);
        else if (name == "values") out.push_back(kv.second);
        else out.emplace_back(List{Value(kv.first), kv.second});
    }
    return Value(std::move(out));
}

bool is_string_method(const std::string& n) {
    static const char* const names[] = {"startswith", "endswith", "split", "rsplit", "strip", "lstrip", "rstrip", "lower",
                                        "upper",      "title",    "capitalize", "replace", "find", "count", "join"};
    return std::any_of(std::begin(names), std::end(names), [&](const char* x) { return n == x; });
}

bool is_dict_method(const std::string& n) { return n == "items" || n == "keys" || n == "values" || n == "get"; }

} // namespace

std::string py_title(const std::string& s, bool only_first) {
    std::string out = s;
    bool prev_letter = false;
    for (size_t i = 0; i < out.size(); ++i) {
        char& c = out[i];
        const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        const bool start = only_first ? i == 0 : !prev_letter;
        if (start && c >= 'a' && c <= 'z') c = char(c - 32);
        else if (!start && c >= 'A' && c <= 'Z') c = char(c + 32);
        prev_letter = letter || (!only_first && static_cast<unsigned char>(c) >= 0x80);
    }
    return out;
}

Value get_attr(const Value& obj, const std::string& name) {
    switch (obj.kind()) {
    case Value::Kind::undefined: undefined_error(obj);
    case Value::Kind::dict:
        if (is_dict_method(name))
            return Value::function("dict." + name, [obj, name](CallArgs& a) { return dict_method(obj, name, a); });
        [[fallthrough]];
    case Value::Kind::nspace:
        if (const Value* v = obj.find(name)) return *v;
        return Value::undefined("'" + py_type(obj) + " object' has no attribute '" + name + "', so it");
    case Value::Kind::string:
        if (is_string_method(name)) {
            const std::string self = obj.as_string();
            return Value::function("str." + name, [self, name](CallArgs& a) { return string_method(self, name, a); });
        }
        break;
    default: break;
    }
    return Value::undefined("'" + py_type(obj) + " object' has no attribute '" + name + "', so it");
}

Value get_item(const Value& obj, const Value& key) {
    if (obj.is_undefined()) undefined_error(obj);
    if (obj.is_mapping()) {
        if (!key.is_string()) return Value::undefined("a dict key of type " + py_type(key));
        if (const Value* v = obj.find(key.as_string())) return *v;
        return get_attr(obj, key.as_string());
    }
    if ((obj.is_list() || obj.is_string()) && (key.kind() == Value::Kind::integer || key.kind() == Value::Kind::boolean)) {
        if (obj.is_list()) {
            const int64_t n = int64_t(obj.as_list().size());
            const int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
            if (i < 0 || i >= n) return Value::undefined("list index " + std::to_string(key.as_int()) + ", out of range, so it");
            return obj.as_list()[size_t(i)];
        }
        const std::vector<char32_t> cps = code_points(obj.as_string());
        const int64_t n = int64_t(cps.size());
        const int64_t i = key.as_int() < 0 ? key.as_int() + n : key.as_int();
        if (i < 0 || i >= n) return Value::undefined("string index " + std::to_string(key.as_int()) + ", out of range, so it");
        return Value(from_code_points(cps, size_t(i), size_t(i) + 1));
    }
    if (key.is_string()) return get_attr(obj, key.as_string());
    return Value::undefined("an item of a " + py_type(obj));
}

Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step) {
    auto bound = [](const Value& v, const char* what, int64_t def) {
        if (v.is_none() || v.is_undefined()) return def;
        if (v.kind() != Value::Kind::integer && v.kind() != Value::Kind::boolean)
            runtime_error(std::string("slice ") + what + " must be an integer, not " + py_type(v));
        return v.as_int();
    };
    const int64_t st = bound(step, "step", 1);
    if (st == 0) runtime_error("slice step cannot be zero");
    const bool is_str = obj.is_string();
    if (!is_str && !obj.is_list()) runtime_error("a " + py_type(obj) + " cannot be sliced");
    const std::vector<char32_t> cps = is_str ? code_points(obj.as_string()) : std::vector<char32_t>{};
    const int64_t n = is_str ? int64_t(cps.size()) : int64_t(obj.as_list().size());
    // Python's slice.indices().
    auto clamp = [&](const Value& v, int64_t def) {
        int64_t i = bound(v, "bound", def);
        if (v.is_none() || v.is_undefined()) return def;
        if (i < 0) i += n;
        if (i < 0) i = st < 0 ? -1 : 0;
        if (i >= n) i = st < 0 ? n - 1 : n;
        return i;
    };
    const int64_t b = clamp(start, st < 0 ? n - 1 : 0), e = clamp(stop, st < 0 ? -1 : n);
    List items;
    std::vector<char32_t> chars;
    for (int64_t i = b; st > 0 ? i < e : i > e;) {
        if (is_str) chars.push_back(cps[size_t(i)]);
        else items.push_back(obj.as_list()[size_t(i)]);
        if (__builtin_add_overflow(i, st, &i)) break;
    }
    if (is_str) return Value(from_code_points(chars, 0, chars.size()));
    return Value(std::move(items));
}

} // namespace rabbit::jinja
