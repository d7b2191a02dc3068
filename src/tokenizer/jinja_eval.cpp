// SPDX-License-Identifier: Apache-2.0
// The Jinja renderer: statements with jinja2's scoping (a for loop's body and a macro's are
// scopes of their own; if is not, so `set` inside a loop does not leak, hence namespace()) and
// expressions with Python's operators.
#include "tokenizer/jinja.h"

#include "common/error.h"
#include "tokenizer/jinja_builtins.h"

#include <algorithm>
#include <climits>
#include <cmath>
#include <cstdint>

namespace rabbit::jinja {

namespace {

constexpr int k_max_call_depth = 100; // macro recursion: a clear error, not a stack overflow

struct RaisedError { // raise_exception(message) in the template
    std::string message;
};

enum class Flow { normal, break_, continue_ };
using Frame = std::vector<std::pair<std::string, Value>>;

Value* find_in(Frame& f, const std::string& name) {
    for (auto& kv : f)
        if (kv.first == name) return &kv.second;
    return nullptr;
}

void set_in(Frame& f, const std::string& name, Value v) {
    if (Value* slot = find_in(f, name)) *slot = std::move(v);
    else f.emplace_back(name, std::move(v));
}

bool is_int(const Value& v) { return v.kind() == Value::Kind::integer || v.kind() == Value::Kind::boolean; }

[[noreturn]] void operand_error(const std::string& op, const Value& a, const Value& b) {
    if (a.is_undefined()) undefined_error(a);
    if (b.is_undefined()) undefined_error(b);
    runtime_error("unsupported operand types for " + op + ": '" + py_type(a) + "' and '" + py_type(b) + "'");
}

// Limits that keep a hostile template from running for ever or filling memory; no chat
// template comes near them.
constexpr size_t k_max_value_bytes = size_t(1) << 28;
constexpr int64_t k_max_steps = 1'000'000; // loop passes and macro calls in one render

void check_overflow(bool overflowed) {
    if (overflowed) runtime_error("integer overflow (rabbit's integers are 64-bit, Python's are unbounded)");
}

// i op j on 64-bit integers, an error where Python's unbounded integers would differ.
int64_t int_op(char op, int64_t i, int64_t j) {
    int64_t r = 0;
    const bool overflowed = op == '+'   ? __builtin_add_overflow(i, j, &r)
                            : op == '-' ? __builtin_sub_overflow(i, j, &r)
                                        : __builtin_mul_overflow(i, j, &r);
    check_overflow(overflowed);
    return r;
}

Value repeat(const Value& seq, int64_t n) {
    const size_t unit = seq.is_string() ? seq.as_string().size() : seq.as_list().size();
    if (n > 0 && unit > 0 && uint64_t(n) > k_max_value_bytes / unit) runtime_error("a repetition of more than 256 MiB");
    if (seq.is_string()) {
        std::string out;
        for (int64_t i = 0; i < n; ++i) out += seq.as_string();
        return Value(out);
    }
    List out;
    for (int64_t i = 0; i < n; ++i) out.insert(out.end(), seq.as_list().begin(), seq.as_list().end());
    return Value(std::move(out));
}

Value arithmetic(const std::string& op, const Value& a, const Value& b) {
    if (op == "+") {
        if (a.is_string() && b.is_string()) return Value(a.as_string() + b.as_string());
        if (a.is_list() && b.is_list()) {
            List out = a.as_list();
            out.insert(out.end(), b.as_list().begin(), b.as_list().end());
            return Value(std::move(out));
        }
    }
    if (op == "*" && (a.is_string() || a.is_list()) && is_int(b)) return repeat(a, b.as_int());
    if (op == "*" && (b.is_string() || b.is_list()) && is_int(a)) return repeat(b, a.as_int());
    if (!a.is_number() || !b.is_number()) operand_error(op, a, b);
    const bool ints = is_int(a) && is_int(b);
    const double x = a.as_real(), y = b.as_real();
    if ((op == "/" || op == "//" || op == "%") && y == 0) runtime_error("division by zero");
    const int64_t i = a.as_int(), j = b.as_int();
    if (op == "+" || op == "-" || op == "*") {
        if (ints) return Value(int_op(op[0], i, j));
        return Value(op == "+" ? x + y : op == "-" ? x - y : x * y);
    }
    if (ints && (op == "//" || op == "%") && i == INT64_MIN && j == -1) check_overflow(true);
    if (op == "/") return Value(x / y);
    if (op == "//") {
        if (!ints) return Value(std::floor(x / y));
        const int64_t q = a.as_int() / b.as_int();
        return Value((a.as_int() % b.as_int() != 0 && ((a.as_int() < 0) != (b.as_int() < 0))) ? q - 1 : q);
    }
    if (op == "%") {
        if (!ints) {
            const double m = std::fmod(x, y);
            return Value((m != 0 && ((m < 0) != (y < 0))) ? m + y : m);
        }
        const int64_t m = a.as_int() % b.as_int();
        return Value((m != 0 && ((m < 0) != (b.as_int() < 0))) ? m + b.as_int() : m);
    }
    if (op == "**") {
        if (ints && j >= 0) {
            int64_t p = 1, base = i;
            for (int64_t e = j; e > 0; e >>= 1) { // by squaring
                if (e & 1) p = int_op('*', p, base);
                if (e > 1) base = int_op('*', base, base);
            }
            return Value(p);
        }
        return Value(std::pow(x, y));
    }
    operand_error(op, a, b);
}

bool less(const Value& a, const Value& b, const std::string& op) {
    if (a.is_number() && b.is_number()) return a.as_real() < b.as_real();
    if (a.is_string() && b.is_string()) return a.as_string() < b.as_string();
    if (a.is_list() && b.is_list()) {
        const List &x = a.as_list(), &y = b.as_list();
        for (size_t i = 0; i < x.size() && i < y.size(); ++i) {
            if (!equal(x[i], y[i])) return less(x[i], y[i], op);
        }
        return x.size() < y.size();
    }
    operand_error(op, a, b);
}

bool contains(const Value& container, const Value& item) {
    if (container.is_string()) {
        if (!item.is_string()) runtime_error("'in <string>' needs a string on the left, not " + py_type(item));
        return container.as_string().find(item.as_string()) != std::string::npos;
    }
    if (container.is_mapping()) return item.is_string() && container.find(item.as_string()) != nullptr;
    if (container.is_list() || container.is_undefined()) {
        for (const Value& x : iterate(container))
            if (equal(x, item)) return true;
        return false;
    }
    runtime_error("argument of type '" + py_type(container) + "' is not iterable");
}

Value binary_op(const std::string& op, const Value& a, const Value& b) {
    if (op == "==") return Value(equal(a, b));
    if (op == "!=") return Value(!equal(a, b));
    if (op == "<") return Value(less(a, b, op));
    if (op == ">") return Value(less(b, a, op));
    if (op == "<=") return Value(!less(b, a, op));
    if (op == ">=") return Value(!less(a, b, op));
    if (op == "in") return Value(contains(b, a));
    if (op == "not in") return Value(!contains(b, a));
    if (op == "~") return Value(to_str(a) + to_str(b));
    return arithmetic(op, a, b);
}

class Renderer {
public:
    explicit Renderer(const Dict& variables) {
        frames_.push_back(std::make_shared<Frame>(globals()));
        for (const auto& kv : variables) set_in(*frames_[0], kv.first, kv.second);
        frames_.push_back(std::make_shared<Frame>()); // the template's own top level
    }

    Flow exec(const Body& body, std::string& out);
    Value eval(const Expr& e) {
        try {
            return eval_inner(e);
        } catch (TemplateError& err) {
            if (err.line == 0) err.line = e.line;
            throw;
        }
    }

private:
    static Frame globals();
    Value lookup(const std::string& name) {
        for (auto it = frames_.rbegin(); it != frames_.rend(); ++it)
            if (Value* v = find_in(**it, name)) return *v;
        return Value::undefined("'" + name + "'");
    }
    Value eval_inner(const Expr& e);
    Value eval_call(const Expr& e);
    CallArgs eval_args(const Expr& e, size_t first);
    void exec_set(const Stmt& s);
    Flow exec_for(const Stmt& s, std::string& out);
    Value call_macro(const Stmt& m, CallArgs& a);
    void bind(const std::vector<std::string>& targets, const Value& item, Frame& f);

    void step() {
        if (++steps_ > k_max_steps) runtime_error("the template runs more than 1,000,000 loop passes and macro calls");
    }

    std::vector<std::shared_ptr<Frame>> frames_;
    int call_depth_ = 0;
    int64_t steps_ = 0;
};

Frame Renderer::globals() {
    Frame g;
    g.emplace_back("raise_exception", Value::function("raise_exception", [](CallArgs& a) -> Value {
                       throw RaisedError{to_str(arg(a, 0, "message", Value("")))};
                   }));
    auto make_ns = [](CallArgs& a) {
        Dict d;
        if (!a.pos.empty() && a.pos[0].is_mapping()) d = a.pos[0].as_dict();
        for (auto& kv : a.kw) d.emplace_back(kv.first, kv.second);
        return d;
    };
    g.emplace_back("namespace", Value::function("namespace", [make_ns](CallArgs& a) { return Value::make_namespace(make_ns(a)); }));
    g.emplace_back("dict", Value::function("dict", [make_ns](CallArgs& a) { return Value(make_ns(a)); }));
    g.emplace_back("range", Value::function("range", [](CallArgs& a) {
                       for (const Value& v : a.pos)
                           if (!is_int(v)) runtime_error("range() needs integers, not " + py_type(v));
                       int64_t start = 0, stop = 0, step = 1;
                       if (a.pos.size() == 1) stop = a.pos[0].as_int();
                       else if (a.pos.size() >= 2) start = a.pos[0].as_int(), stop = a.pos[1].as_int();
                       if (a.pos.size() >= 3) step = a.pos[2].as_int();
                       if (step == 0) runtime_error("range() step must not be zero");
                       List out;
                       for (int64_t i = start; step > 0 ? i < stop : i > stop;) {
                           if (out.size() >= 1000000) runtime_error("range() of more than a million items");
                           out.emplace_back(i);
                           if (__builtin_add_overflow(i, step, &i)) break;
                       }
                       return Value(std::move(out));
                   }));
    return g;
}

Value Renderer::eval_inner(const Expr& e) {
    switch (e.kind) {
    case Expr::Kind::literal: return e.literal;
    case Expr::Kind::name: return lookup(e.name);
    case Expr::Kind::list: {
        List items;
        for (const auto& a : e.args) items.push_back(eval(*a));
        return Value(std::move(items));
    }
    case Expr::Kind::dict: {
        Dict d;
        for (size_t i = 0; i + 1 < e.args.size(); i += 2) {
            const Value key = eval(*e.args[i]);
            if (!key.is_string()) runtime_error("dict keys must be strings here, not " + py_type(key));
            Value v = eval(*e.args[i + 1]);
            auto it = std::find_if(d.begin(), d.end(), [&](const auto& kv) { return kv.first == key.as_string(); });
            if (it != d.end()) it->second = std::move(v);
            else d.emplace_back(key.as_string(), std::move(v));
        }
        return Value(std::move(d));
    }
    case Expr::Kind::attr: return get_attr(eval(*e.args[0]), e.name);
    case Expr::Kind::item: return get_item(eval(*e.args[0]), eval(*e.args[1]));
    case Expr::Kind::slice: {
        const Value obj = eval(*e.args[0]);
        auto part = [&](size_t i) { return e.args[i] ? eval(*e.args[i]) : Value::none(); };
        return get_slice(obj, part(1), part(2), part(3));
    }
    case Expr::Kind::call: return eval_call(e);
    case Expr::Kind::filter: {
        const Value v = eval(*e.args[0]);
        CallArgs a = eval_args(e, 1);
        return apply_filter(e.name, v, a);
    }
    case Expr::Kind::test: {
        const Value v = eval(*e.args[0]);
        CallArgs a = eval_args(e, 1);
        return Value(apply_test(e.name, v, a) != e.negated);
    }
    case Expr::Kind::unary: {
        const Value v = eval(*e.args[0]);
        if (e.name == "not") return Value(!truthy(v));
        if (!v.is_number()) operand_error("unary " + e.name, v, v);
        if (e.name == "+") return is_int(v) ? Value(v.as_int()) : v;
        if (is_int(v)) check_overflow(v.as_int() == INT64_MIN);
        return is_int(v) ? Value(-v.as_int()) : Value(-v.as_real());
    }
    case Expr::Kind::binary: {
        Value l = eval(*e.args[0]);
        if (e.name == "and") return truthy(l) ? eval(*e.args[1]) : l;
        if (e.name == "or") return truthy(l) ? l : eval(*e.args[1]);
        return binary_op(e.name, l, eval(*e.args[1]));
    }
    case Expr::Kind::cond:
        if (truthy(eval(*e.args[1]))) return eval(*e.args[0]);
        return e.args[2] ? eval(*e.args[2]) : Value::undefined("the else branch of an inline if, absent, so it");
    }
    return Value();
}

CallArgs Renderer::eval_args(const Expr& e, size_t first) {
    CallArgs a;
    for (size_t i = first; i < e.args.size(); ++i) a.pos.push_back(eval(*e.args[i]));
    for (const auto& kv : e.kwargs) a.kw.emplace_back(kv.first, eval(*kv.second));
    return a;
}

Value Renderer::eval_call(const Expr& e) {
    const Value callee = eval(*e.args[0]);
    CallArgs a = eval_args(e, 1);
    if (callee.kind() != Value::Kind::function) {
        if (callee.is_undefined()) undefined_error(callee);
        runtime_error("'" + py_type(callee) + "' object is not callable");
    }
    return callee.call(a);
}

void Renderer::bind(const std::vector<std::string>& targets, const Value& item, Frame& f) {
    if (targets.size() == 1) {
        set_in(f, targets[0], item);
        return;
    }
    const List parts = iterate(item);
    if (parts.size() != targets.size())
        runtime_error("cannot unpack " + std::to_string(parts.size()) + " values into " + std::to_string(targets.size()) + " names");
    for (size_t i = 0; i < targets.size(); ++i) set_in(f, targets[i], parts[i]);
}

void Renderer::exec_set(const Stmt& s) {
    Value v = eval(*s.expr);
    if (!s.attr.empty()) {
        Value ns = lookup(s.text);
        if (ns.kind() != Value::Kind::nspace) runtime_error("cannot set an attribute of '" + s.text + "', which is not a namespace()");
        set_in(ns.mutable_dict(), s.attr, std::move(v));
        return;
    }
    bind(s.targets, v, *frames_.back());
}

Flow Renderer::exec_for(const Stmt& s, std::string& out) {
    const List all = iterate(eval(*s.expr));
    List items;
    for (const Value& item : all) {
        step();
        if (!s.filter) {
            items.push_back(item);
            continue;
        }
        auto scratch = std::make_shared<Frame>();
        bind(s.targets, item, *scratch);
        frames_.push_back(scratch);
        const bool keep = truthy(eval(*s.filter));
        frames_.pop_back();
        if (keep) items.push_back(item);
    }
    if (items.empty()) return exec(s.else_body, out);
    const int64_t n = int64_t(items.size());
    for (int64_t i = 0; i < n; ++i) {
        step();
        auto frame = std::make_shared<Frame>();
        Dict loop = {{"index0", Value(i)},          {"index", Value(i + 1)},         {"revindex", Value(n - i)},
                     {"revindex0", Value(n - i - 1)}, {"first", Value(i == 0)},       {"last", Value(i == n - 1)},
                     {"length", Value(n)},          {"depth", Value(int64_t(1))},    {"depth0", Value(int64_t(0))}};
        loop.emplace_back("previtem", i > 0 ? items[size_t(i - 1)] : Value::undefined("loop.previtem on the first item, so it"));
        loop.emplace_back("nextitem", i + 1 < n ? items[size_t(i + 1)] : Value::undefined("loop.nextitem on the last item, so it"));
        loop.emplace_back("cycle", Value::function("loop.cycle", [i](CallArgs& a) {
                              if (a.pos.empty()) runtime_error("loop.cycle() needs at least one argument");
                              return a.pos[size_t(i) % a.pos.size()];
                          }));
        set_in(*frame, "loop", Value(std::move(loop)));
        bind(s.targets, items[size_t(i)], *frame);
        frames_.push_back(frame);
        const Flow f = exec(s.body, out);
        frames_.pop_back();
        if (f == Flow::break_) break;
    }
    return Flow::normal;
}

Value Renderer::call_macro(const Stmt& m, CallArgs& a) {
    step();
    if (call_depth_ >= k_max_call_depth)
        runtime_error("macro " + m.text + " recurses deeper than " + std::to_string(k_max_call_depth) + " calls");
    if (a.pos.size() > m.params.size()) runtime_error("macro " + m.text + " takes " + std::to_string(m.params.size()) + " arguments");
    auto frame = std::make_shared<Frame>();
    std::vector<std::shared_ptr<Frame>> saved = {frames_[0], frames_[1], frame};
    std::swap(saved, frames_);
    ++call_depth_;
    std::string out;
    try {
        for (size_t i = 0; i < m.params.size(); ++i) {
            const Value none;
            const Value& given = arg(a, i, m.params[i].first.c_str(), none);
            Value v = !given.is_undefined() ? given
                      : m.params[i].second ? eval(*m.params[i].second)
                                           : Value::undefined("'" + m.params[i].first + "'");
            set_in(*frame, m.params[i].first, std::move(v));
        }
        exec(m.body, out);
    } catch (...) {
        --call_depth_;
        std::swap(saved, frames_);
        throw;
    }
    --call_depth_;
    std::swap(saved, frames_);
    return Value(out);
}

Flow Renderer::exec(const Body& body, std::string& out) {
    for (const Stmt& s : body) {
        if (out.size() > k_max_value_bytes) runtime_error("the template renders more than 256 MiB");
        try {
            switch (s.kind) {
            case Stmt::Kind::text: out += s.text; break;
            case Stmt::Kind::output: out += to_str(eval(*s.expr)); break;
            case Stmt::Kind::if_: {
                const Body* chosen = &s.else_body;
                for (const auto& br : s.branches) {
                    if (truthy(eval(*br.first))) {
                        chosen = &br.second;
                        break;
                    }
                }
                const Flow f = exec(*chosen, out);
                if (f != Flow::normal) return f;
                break;
            }
            case Stmt::Kind::for_: exec_for(s, out); break;
            case Stmt::Kind::set: exec_set(s); break;
            case Stmt::Kind::set_block: {
                std::string captured;
                exec(s.body, captured);
                set_in(*frames_.back(), s.text, Value(captured));
                break;
            }
            case Stmt::Kind::macro: {
                const Stmt* m = &s;
                set_in(*frames_.back(), s.text,
                       Value::function(s.text, [this, m](CallArgs& a) { return call_macro(*m, a); }));
                break;
            }
            case Stmt::Kind::break_: return Flow::break_;
            case Stmt::Kind::continue_: return Flow::continue_;
            }
        } catch (TemplateError& err) {
            if (err.line == 0) err.line = s.line;
            throw;
        }
    }
    return Flow::normal;
}

// Filters and tests are names jinja2 resolves when it compiles the template: an unknown one
// fails up front, not when a branch first runs.
void check_names(const Expr* e) {
    if (!e) return;
    if (e->kind == Expr::Kind::filter && !is_known_filter(e->name))
        throw TemplateError{"unsupported Jinja construct: the filter '" + e->name + "'", e->line};
    if (e->kind == Expr::Kind::test && !is_known_test(e->name))
        throw TemplateError{"unsupported Jinja construct: the test '" + e->name + "'", e->line};
    for (const auto& a : e->args) check_names(a.get());
    for (const auto& kv : e->kwargs) check_names(kv.second.get());
}

void check_names(const Body& body) {
    for (const Stmt& s : body) {
        check_names(s.expr.get());
        check_names(s.filter.get());
        for (const auto& br : s.branches) {
            check_names(br.first.get());
            check_names(br.second);
        }
        for (const auto& p : s.params) check_names(p.second.get());
        check_names(s.body);
        check_names(s.else_body);
    }
}

std::string where(int line) {
    return "chat template" + (line > 0 ? " line " + std::to_string(line) : std::string()) + ": ";
}

// A message on one line, whatever keys or texts of the template it quotes.
std::string one_line(const std::string& s) {
    std::string out;
    for (char c : s) {
        if (out.size() >= 400) return out + "...";
        if (c == '\n') out += "\\n";
        else if (c == '\r') out += "\\r";
        else out += c;
    }
    return out;
}

} // namespace

Template::Template(const std::string& source, std::string origin) : origin_(std::move(origin)) {
    try {
        body_ = std::make_unique<Body>(parse(lex(source)));
        check_names(*body_);
    } catch (const TemplateError& e) {
        const std::string msg = where(e.line) + one_line(e.message);
        if (e.message.rfind("unsupported Jinja construct", 0) == 0) throw unsupported(origin_, msg);
        throw bad_input(origin_, msg);
    }
}

Template::~Template() = default;
Template::Template(Template&&) noexcept = default;
Template& Template::operator=(Template&&) noexcept = default;

std::string Template::render(const Dict& variables) const {
    Renderer r(variables);
    std::string out;
    try {
        r.exec(*body_, out);
    } catch (const TemplateError& e) {
        const std::string msg = where(e.line) + one_line(e.message);
        if (e.message.rfind("unsupported Jinja construct", 0) == 0) throw unsupported(origin_, msg);
        throw bad_input(origin_, msg);
    } catch (const RaisedError& e) {
        throw bad_input(origin_, "the chat template refuses this conversation: " + one_line(e.message));
    }
    return out;
}

} // namespace rabbit::jinja
