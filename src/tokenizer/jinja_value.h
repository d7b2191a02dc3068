// SPDX-License-Identifier: Apache-2.0
// The values of rabbit's Jinja subset, with Python's semantics where jinja2 inherits them
// (truthiness, equality, str(), repr(), the arithmetic of int and float) so that a chat
// template renders byte for byte what jinja2 renders for transformers' apply_chat_template.
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rabbit::jinja {

class Value;
using List = std::vector<Value>;
// Keys are strings only: chat messages are JSON, and the templates' dict literals use strings.
using Dict = std::vector<std::pair<std::string, Value>>;

// The arguments of a call: positional, then keyword, in the order written.
struct CallArgs {
    std::vector<Value> pos;
    std::vector<std::pair<std::string, Value>> kw;
};
using Function = std::function<Value(CallArgs&)>;

class Value {
public:
    // undefined is jinja2's default Undefined: prints empty, iterates empty, is false, and fails
    // on attribute access or arithmetic. nspace is namespace(): a dict whose attributes `set` may
    // change, shared by reference like the Python object.
    enum class Kind : uint8_t { undefined, none, boolean, integer, real, string, list, dict, nspace, function };

    Value() = default; // undefined
    static Value undefined(std::string name) { Value v; v.str_ = std::move(name); return v; }
    static Value none() { Value v; v.kind_ = Kind::none; return v; }
    Value(bool b) : kind_(Kind::boolean), int_(b) {}
    Value(int64_t i) : kind_(Kind::integer), int_(i) {}
    Value(int i) : kind_(Kind::integer), int_(i) {}
    Value(double d) : kind_(Kind::real), real_(d) {}
    Value(std::string s) : kind_(Kind::string), str_(std::move(s)) {}
    Value(const char* s) : kind_(Kind::string), str_(s) {}
    Value(List l) : kind_(Kind::list), list_(std::make_shared<List>(std::move(l))) {}
    Value(Dict d) : kind_(Kind::dict), dict_(std::make_shared<Dict>(std::move(d))) {}
    static Value make_namespace(Dict d) { Value v(std::move(d)); v.kind_ = Kind::nspace; return v; }
    static Value function(std::string name, Function f);

    Kind kind() const { return kind_; }
    bool is_undefined() const { return kind_ == Kind::undefined; }
    bool is_none() const { return kind_ == Kind::none; }
    bool is_string() const { return kind_ == Kind::string; }
    bool is_number() const { return kind_ == Kind::integer || kind_ == Kind::real || kind_ == Kind::boolean; }
    bool is_list() const { return kind_ == Kind::list; }
    bool is_mapping() const { return kind_ == Kind::dict || kind_ == Kind::nspace; }

    bool as_bool() const { return int_ != 0; }
    int64_t as_int() const { return int_; } // integer and boolean
    double as_real() const { return kind_ == Kind::real ? real_ : double(int_); }
    const std::string& as_string() const { return str_; } // string; the undefined's name
    const List& as_list() const { return *list_; }
    const Dict& as_dict() const { return *dict_; }
    Dict& mutable_dict() const { return *dict_; } // namespaces only
    const std::string& function_name() const { return str_; }
    Value call(CallArgs& args) const { return (*fn_)(args); }

    // A key of a dict or namespace; nullptr when absent.
    const Value* find(const std::string& key) const;

private:
    Kind kind_ = Kind::undefined;
    int64_t int_ = 0;
    double real_ = 0;
    std::string str_;
    std::shared_ptr<List> list_;
    std::shared_ptr<Dict> dict_;
    std::shared_ptr<Function> fn_;
};

const char* kind_name(Value::Kind k); // "string", "list", ... for messages

bool truthy(const Value& v);
bool equal(const Value& a, const Value& b); // Python's ==, 1 == 1.0 == True included
// Python's str(): what {{ v }} prints (None, True, 1.5, ['a', 1], {'k': 'v'}).
std::string to_str(const Value& v);
std::string py_repr(const Value& v);
std::string py_float_repr(double d);
// json.dumps(v, ensure_ascii=False, indent=indent, sort_keys=...) as transformers' tojson does;
// indent < 0 is None. Throws std::runtime_error for what JSON cannot hold.
std::string to_json(const Value& v, int indent, bool sort_keys);

// Strings as Python sees them, in code points.
std::vector<char32_t> code_points(const std::string& s);
std::string from_code_points(const std::vector<char32_t>& cps, size_t begin, size_t end);
size_t code_point_count(const std::string& s);
bool py_is_space(char32_t c); // str.isspace()

} // namespace rabbit::jinja
