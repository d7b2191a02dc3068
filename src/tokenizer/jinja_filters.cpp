// SPDX-License-Identifier: Apache-2.0
// Jinja's filters and tests that chat templates use, with jinja2's semantics (and transformers'
// tojson: json.dumps with ensure_ascii=False, so no HTML escaping and no \u escapes).
#include "tokenizer/jinja_builtins.h"

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <stdexcept>

namespace rabbit::jinja {

std::string py_title(const std::string& s, bool only_first);
std::string py_replace(const std::string& s, const std::string& from, const std::string& to, int64_t count);

namespace {

const char* const k_filters[] = {"trim",  "tojson",     "length",     "count",  "upper",   "lower", "capitalize", "title",
                                 "default", "d",        "join",       "first",  "last",    "list",  "items",      "string",
                                 "int",   "float",      "abs",        "replace", "reverse", "selectattr", "rejectattr",
                                 "select", "reject",    "map",        "safe",   "unique",  "sum",   "dictsort",   "wordcount"};
const char* const k_tests[] = {"defined", "undefined", "none",     "boolean", "true",       "false", "integer", "float",
                               "number",  "string",    "mapping",  "iterable", "sequence",  "callable", "sameas", "equalto",
                               "eq",      "==",        "ne",       "!=",       "lt",        "<",     "lessthan", "le",
                               "<=",      "gt",        ">",        "greaterthan", "ge",     ">=",    "in",      "odd",
                               "even",    "divisibleby", "lower",  "upper"};

bool compare_less(const Value& a, const Value& b) {
    if (a.is_number() && b.is_number()) return a.as_real() < b.as_real();
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    runtime_error("'<' is not supported between '" + py_type(a) + "' and '" + py_type(b) + "'");
}

int64_t need_int(const Value& v, const char* what) {
    if (v.kind() != Value::Kind::integer && v.kind() != Value::Kind::boolean)
        runtime_error(std::string(what) + " must be an integer, not " + py_type(v));
    return v.as_int();
}

int64_t float_to_int(double d) {
    if (!(d > -9.2e18 && d < 9.2e18)) runtime_error("int() of " + py_float_repr(d) + " is beyond 64-bit integers");
    return int64_t(std::trunc(d));
}

Value to_int(const Value& v, const Value& def) {
    switch (v.kind()) {
    case Value::Kind::boolean:
    case Value::Kind::integer: return Value(v.as_int());
    case Value::Kind::real: return Value(float_to_int(v.as_real()));
    case Value::Kind::string: {
        const std::string s = py_strip(v.as_string(), k_none, true, true);
        char* end = nullptr;
        const long long i = std::strtoll(s.c_str(), &end, 10);
        if (!s.empty() && end && *end == 0) return Value(int64_t(i));
        const double d = std::strtod(s.c_str(), &end); // jinja2 falls back to int(float(s))
        if (!s.empty() && end && *end == 0 && std::isfinite(d)) return Value(float_to_int(d));
        return def;
    }
    default: return def;
    }
}

// select/reject and selectattr/rejectattr: the items whose (attribute's) test passes.
Value select(const Value& seq, CallArgs& a, bool by_attr, bool keep) {
    size_t first_test_arg = 0;
    std::string attr;
    if (by_attr) {
        const Value& name = arg(a, 0, "attribute", k_undef);
        if (!name.is_string()) runtime_error("selectattr/rejectattr need an attribute name");
        attr = name.as_string();
        first_test_arg = 1;
    }
    std::string test;
    CallArgs test_args;
    if (a.pos.size() > first_test_arg) {
        if (!a.pos[first_test_arg].is_string()) runtime_error("the test of select/reject must be named by a string");
        test = a.pos[first_test_arg].as_string();
        if (!is_known_test(test)) throw TemplateError{"unsupported Jinja construct: the test '" + test + "'", 0};
        test_args.pos.assign(a.pos.begin() + std::ptrdiff_t(first_test_arg) + 1, a.pos.end());
    }
    List out;
    for (const Value& item : iterate(seq)) {
        Value subject = item;
        if (by_attr) {
            // selectattr reads dotted paths ("function.name") one attribute at a time.
            size_t start = 0;
            for (size_t dot; (dot = attr.find('.', start)) != std::string::npos; start = dot + 1)
                subject = get_item(subject, Value(attr.substr(start, dot - start)));
            subject = get_item(subject, Value(attr.substr(start)));
        }
        const bool pass = test.empty() ? truthy(subject) : apply_test(test, subject, test_args);
        if (pass == keep) out.push_back(item);
    }
    return Value(std::move(out));
}

Value map_filter(const Value& seq, CallArgs& a) {
    List out;
    const Value& attribute = arg(a, 99, "attribute", k_undef);
    if (attribute.is_string()) {
        const Value& def = arg(a, 99, "default", k_undef);
        for (const Value& item : iterate(seq)) {
            Value v = get_item(item, attribute);
            out.push_back(v.is_undefined() && !def.is_undefined() ? def : v);
        }
        return Value(std::move(out));
    }
    if (a.pos.empty() || !a.pos[0].is_string()) runtime_error("map needs a filter name or attribute=");
    const std::string filter = a.pos[0].as_string();
    if (!is_known_filter(filter)) throw TemplateError{"unsupported Jinja construct: the filter '" + filter + "'", 0};
    CallArgs rest;
    rest.pos.assign(a.pos.begin() + 1, a.pos.end());
    rest.kw = a.kw;
    for (const Value& item : iterate(seq)) out.push_back(apply_filter(filter, item, rest));
    return Value(std::move(out));
}

Value tojson(const Value& v, CallArgs& a) {
    const Value& indent = arg(a, 0, "indent", k_none);
    const Value& separators = arg(a, 99, "separators", k_none);
    if (!separators.is_none()) throw TemplateError{"unsupported Jinja construct: tojson(separators=...)", 0};
    int ind = -1;
    if (!indent.is_none()) ind = int(need_int(indent, "tojson's indent"));
    try {
        return Value(to_json(v, ind, truthy(arg(a, 99, "sort_keys", Value(false)))));
    } catch (const std::runtime_error& e) {
        runtime_error(e.what());
    }
}

Value sequence_end(const Value& v, bool first) {
    if (v.is_string()) {
        const std::vector<char32_t> cps = code_points(v.as_string());
        if (cps.empty()) return Value::undefined("the first item of an empty string, so it");
        const size_t i = first ? 0 : cps.size() - 1;
        return Value(from_code_points(cps, i, i + 1));
    }
    const List items = iterate(v);
    if (items.empty()) return Value::undefined(std::string(first ? "the first" : "the last") + " item of an empty sequence, so it");
    return first ? items.front() : items.back();
}

Value string_filter(const std::string& name, const Value& v, CallArgs& a) {
    if (name == "trim") return Value(py_strip(to_str(v), arg(a, 0, "chars", k_none), true, true));
    if (name == "upper" || name == "lower") {
        std::string s = to_str(v);
        for (char& c : s) {
            if (name == "upper" && c >= 'a' && c <= 'z') c = char(c - 32);
            if (name == "lower" && c >= 'A' && c <= 'Z') c = char(c + 32);
        }
        return Value(s);
    }
    if (name == "capitalize" || name == "title") return Value(py_title(to_str(v), name == "capitalize"));
    if (name == "string") return Value(to_str(v));
    if (name == "replace") {
        const Value& count = arg(a, 2, "count", k_none);
        return Value(py_replace(to_str(v), to_str(arg(a, 0, "old", k_undef)), to_str(arg(a, 1, "new", k_undef)),
                                count.is_none() ? -1 : need_int(count, "replace's count")));
    }
    if (name == "wordcount") {
        int64_t n = 0;
        bool in_word = false;
        for (char c : to_str(v)) {
            const bool w = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || (c & 0x80);
            n += w && !in_word;
            in_word = w;
        }
        return Value(n);
    }
    return Value(); // not a string filter
}

Value sequence_filter(const std::string& name, const Value& v, CallArgs& a) {
    if (name == "length" || name == "count") {
        if (v.is_string()) return Value(int64_t(code_point_count(v.as_string())));
        if (v.is_list() || v.is_mapping() || v.is_undefined()) return Value(int64_t(iterate(v).size()));
        runtime_error("object of type '" + py_type(v) + "' has no len()");
    }
    if (name == "join") {
        const std::string sep = to_str(arg(a, 0, "d", Value("")));
        const Value& attribute = arg(a, 1, "attribute", k_none);
        std::string out;
        bool first = true;
        for (const Value& item : iterate(v)) {
            out += (first ? "" : sep) + to_str(attribute.is_none() ? item : get_item(item, attribute));
            first = false;
        }
        return Value(out);
    }
    if (name == "first" || name == "last") return sequence_end(v, name == "first");
    if (name == "list") return Value(iterate(v));
    if (name == "reverse") {
        if (v.is_string()) {
            std::vector<char32_t> cps = code_points(v.as_string());
            std::reverse(cps.begin(), cps.end());
            return Value(from_code_points(cps, 0, cps.size()));
        }
        List items = iterate(v);
        std::reverse(items.begin(), items.end());
        return Value(std::move(items));
    }
    if (name == "unique") {
        List out;
        for (const Value& item : iterate(v))
            if (std::none_of(out.begin(), out.end(), [&](const Value& o) { return equal(o, item); })) out.push_back(item);
        return Value(std::move(out));
    }
    if (name == "sum") {
        Value total = arg(a, 1, "start", Value(int64_t(0)));
        const Value& attribute = arg(a, 0, "attribute", k_none);
        for (const Value& item : iterate(v)) {
            const Value x = attribute.is_none() ? item : get_item(item, attribute);
            if (!x.is_number() || !total.is_number()) runtime_error("sum needs numbers, not " + py_type(x));
            total = (x.kind() == Value::Kind::real || total.kind() == Value::Kind::real) ? Value(total.as_real() + x.as_real())
                                                                                          : Value(total.as_int() + x.as_int());
        }
        return total;
    }
    if (name == "items" || name == "dictsort") {
        if (v.is_undefined()) return Value(List{});
        if (!v.is_mapping()) runtime_error("can only get item pairs from a mapping, not a " + py_type(v));
        List out;
        for (const auto& kv : v.as_dict()) out.emplace_back(List{Value(kv.first), kv.second});
        if (name == "dictsort")
            std::stable_sort(out.begin(), out.end(), [](const Value& x, const Value& y) {
                return compare_less(x.as_list()[0], y.as_list()[0]);
            });
        return Value(std::move(out));
    }
    if (name == "selectattr" || name == "rejectattr") return select(v, a, true, name == "selectattr");
    if (name == "select" || name == "reject") return select(v, a, false, name == "select");
    if (name == "map") return map_filter(v, a);
    return Value(); // not a sequence filter
}

} // namespace

bool is_known_filter(const std::string& name) {
    return std::any_of(std::begin(k_filters), std::end(k_filters), [&](const char* f) { return name == f; });
}

bool is_known_test(const std::string& name) {
    return std::any_of(std::begin(k_tests), std::end(k_tests), [&](const char* t) { return name == t; });
}

Value apply_filter(const std::string& name, const Value& v, CallArgs& a) {
    if (name == "default" || name == "d") {
        const bool boolean = truthy(arg(a, 1, "boolean", Value(false)));
        return (v.is_undefined() || (boolean && !truthy(v))) ? arg(a, 0, "default_value", Value("")) : v;
    }
    if (name == "safe") return v;
    if (name == "tojson") return tojson(v, a);
    if (name == "int") return to_int(v, arg(a, 0, "default", Value(int64_t(0))));
    if (name == "float") {
        if (v.is_number()) return Value(v.as_real());
        if (v.is_string()) {
            char* end = nullptr;
            const std::string s = py_strip(v.as_string(), k_none, true, true);
            const double d = std::strtod(s.c_str(), &end);
            if (!s.empty() && end && *end == 0) return Value(d);
        }
        return arg(a, 0, "default", Value(0.0));
    }
    if (name == "abs") {
        if (v.kind() == Value::Kind::real) return Value(std::fabs(v.as_real()));
        const int64_t i = need_int(v, "abs's operand");
        return Value(i < 0 ? -i : i);
    }
    if (v.is_undefined() && name != "length" && name != "count" && name != "list" && name != "items" && name != "join" &&
        name != "string" && name != "trim" && name != "first" && name != "last")
        undefined_error(v);
    Value out = string_filter(name, v, a);
    if (!out.is_undefined()) return out;
    out = sequence_filter(name, v, a);
    if (!out.is_undefined() || name == "first" || name == "last") return out;
    throw TemplateError{"unsupported Jinja construct: the filter '" + name + "'", 0};
}

bool apply_test(const std::string& t, const Value& v, CallArgs& a) {
    using K = Value::Kind;
    const Value& other = arg(a, 0, "value", k_undef);
    if (t == "defined") return !v.is_undefined();
    if (t == "undefined") return v.is_undefined();
    if (t == "none") return v.is_none();
    if (t == "boolean") return v.kind() == K::boolean;
    if (t == "true") return v.kind() == K::boolean && v.as_bool();
    if (t == "false") return v.kind() == K::boolean && !v.as_bool();
    if (t == "integer") return v.kind() == K::integer;
    if (t == "float") return v.kind() == K::real;
    if (t == "number") return v.is_number();
    if (t == "string") return v.is_string();
    if (t == "mapping") return v.kind() == K::dict;
    // jinja2's Undefined iterates (empty) and has a length, so it is iterable and a sequence.
    if (t == "iterable" || t == "sequence") return v.is_string() || v.is_list() || v.kind() == K::dict || v.is_undefined();
    if (t == "callable") return v.kind() == K::function;
    if (t == "sameas") {
        if (v.kind() != other.kind()) return false;
        if (v.is_none() || v.kind() == K::boolean) return equal(v, other);
        return v.is_mapping() && &v.as_dict() == &other.as_dict();
    }
    if (t == "equalto" || t == "eq" || t == "==") return equal(v, other);
    if (t == "ne" || t == "!=") return !equal(v, other);
    if (t == "lt" || t == "<" || t == "lessthan") return compare_less(v, other);
    if (t == "gt" || t == ">" || t == "greaterthan") return compare_less(other, v);
    if (t == "le" || t == "<=") return !compare_less(other, v);
    if (t == "ge" || t == ">=") return !compare_less(v, other);
    if (t == "in") {
        if (other.is_string()) return v.is_string() && other.as_string().find(v.as_string()) != std::string::npos;
        const List items = iterate(other);
        return std::any_of(items.begin(), items.end(), [&](const Value& x) { return equal(x, v); });
    }
    if (t == "odd" || t == "even") return (need_int(v, "odd/even's operand") % 2 != 0) == (t == "odd");
    if (t == "divisibleby") {
        const int64_t d = need_int(other, "divisibleby's argument");
        if (d == 0) runtime_error("divisibleby 0");
        return need_int(v, "divisibleby's operand") % d == 0;
    }
    if (t == "lower" || t == "upper") {
        const std::string s = to_str(v);
        bool cased = false, all = true;
        for (char c : s) {
            const bool lo = c >= 'a' && c <= 'z', up = c >= 'A' && c <= 'Z';
            cased = cased || lo || up;
            if ((t == "lower" && up) || (t == "upper" && lo)) all = false;
        }
        return cased && all;
    }
    throw TemplateError{"unsupported Jinja construct: the test '" + t + "'", 0};
}

} // namespace rabbit::jinja
