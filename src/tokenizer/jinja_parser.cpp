// SPDX-License-Identifier: Apache-2.0
// The Jinja parser: statements and expressions, with jinja2's precedence (or < and < not <
// comparisons < + - < ~ < * / // % < ** < unary - + < postfix . [] () and filters | and tests is).
//
// Operands of each Expr kind (Expr::args):
//   list: the items; dict: key0, value0, key1, ...; attr: object (name = attribute);
//   item: object, key; slice: object, start, stop, step (nullptr when omitted);
//   call: callee, positional arguments...; filter and test: operand, arguments...;
//   unary: operand (name = "not", "-" or "+"); binary: left, right (name = operator);
//   cond: value, condition, else value (nullptr when omitted).
#include "tokenizer/jinja_ast.h"

namespace rabbit::jinja {

namespace {

constexpr int k_max_depth = 200; // nesting deeper than any real template: a clear error, not a stack overflow

class Parser {
public:
    explicit Parser(const std::vector<Token>& t) : t_(t) {}

    Body parse_template() {
        std::string end;
        Body body = parse_body({}, end);
        return body;
    }

private:
    const Token& peek(size_t k = 0) const { return t_[std::min(i_ + k, t_.size() - 1)]; }
    const Token& next() { return t_[std::min(i_++, t_.size() - 1)]; }
    bool is_op(const char* op, size_t k = 0) const { return peek(k).kind == Token::Kind::op && peek(k).text == op; }
    bool is_name(const char* n, size_t k = 0) const { return peek(k).kind == Token::Kind::name && peek(k).text == n; }
    [[noreturn]] void fail(const std::string& what) const { throw TemplateError{what, peek().line}; }

    std::string describe(const Token& t) const {
        switch (t.kind) {
        case Token::Kind::tag_end: return "the end of the tag";
        case Token::Kind::end: return "the end of the template";
        case Token::Kind::string: return "a string";
        default: return "'" + t.text + "'";
        }
    }
    void expect_op(const char* op) {
        if (!is_op(op)) fail(std::string("expected '") + op + "', found " + describe(peek()));
        ++i_;
    }
    std::string expect_name() {
        if (peek().kind != Token::Kind::name) fail("expected a name, found " + describe(peek()));
        return next().text;
    }
    void expect_tag_end() {
        if (peek().kind != Token::Kind::tag_end) fail("expected the end of the tag, found " + describe(peek()));
        ++i_;
    }

    struct DepthGuard {
        int& d;
        DepthGuard(int& depth, const Parser& p) : d(depth) {
            if (++d > k_max_depth) p.fail("the template nests more than " + std::to_string(k_max_depth) + " levels deep");
        }
        ~DepthGuard() { --d; }
    };

    // Statements up to a block tag named in `ends` (consumed up to its name; `end` tells which),
    // or the end of the template when ends is empty.
    Body parse_body(const std::vector<std::string>& ends, std::string& end) {
        DepthGuard guard(depth_, *this);
        Body body;
        for (;;) {
            const Token& t = peek();
            if (t.kind == Token::Kind::end) {
                if (ends.empty()) return body;
                fail("the template ends inside a block: expected {% " + ends.back() + " %}");
            }
            if (t.kind == Token::Kind::text) {
                Stmt s{Stmt::Kind::text, t.line};
                s.text = next().text;
                body.push_back(std::move(s));
            } else if (t.kind == Token::Kind::var_begin) {
                next();
                Stmt s{Stmt::Kind::output, t.line};
                s.expr = parse_expr();
                expect_tag_end();
                body.push_back(std::move(s));
            } else {
                next(); // block_begin
                const std::string name = peek().kind == Token::Kind::name ? peek().text : "";
                for (const std::string& e : ends) {
                    if (name == e) {
                        next();
                        end = name;
                        return body;
                    }
                }
                const bool closer = name.rfind("end", 0) == 0 || name == "else" || name == "elif";
                if (closer && !ends.empty()) fail("{% " + name + " %} where {% " + ends.back() + " %} was expected");
                body.push_back(parse_statement());
            }
        }
    }

    Stmt parse_statement() {
        const int line = peek().line;
        const std::string name = expect_name();
        if (name == "if") return parse_if(line);
        if (name == "for") return parse_for(line);
        if (name == "set") return parse_set(line);
        if (name == "macro") return parse_macro(line);
        if (name == "break" || name == "continue") {
            expect_tag_end();
            return Stmt{name == "break" ? Stmt::Kind::break_ : Stmt::Kind::continue_, line};
        }
        if (name == "generation") { // transformers' {% generation %}: marks the assistant's text, renders it as is
            expect_tag_end();
            std::string end;
            Stmt s{Stmt::Kind::if_, line};
            Expr yes{Expr::Kind::literal, line};
            yes.literal = Value(true);
            s.branches.emplace_back(std::make_unique<Expr>(std::move(yes)), parse_body({"endgeneration"}, end));
            expect_tag_end();
            return s;
        }
        static const char* const known[] = {"endif", "endfor", "endset", "endmacro", "else", "elif", "endgeneration"};
        for (const char* k : known)
            if (name == k) throw TemplateError{"{% " + name + " %} without the block it closes", line};
        throw TemplateError{"unsupported Jinja construct {% " + name + " %}", line};
    }

    Stmt parse_if(int line) {
        Stmt s{Stmt::Kind::if_, line};
        ExprPtr cond = parse_expr();
        expect_tag_end();
        for (;;) {
            std::string end;
            Body body = parse_body({"elif", "else", "endif"}, end);
            s.branches.emplace_back(std::move(cond), std::move(body));
            if (end == "elif") {
                cond = parse_expr();
                expect_tag_end();
                continue;
            }
            expect_tag_end();
            if (end == "else") {
                s.else_body = parse_body({"endif"}, end);
                expect_tag_end();
            }
            return s;
        }
    }

    Stmt parse_for(int line) {
        Stmt s{Stmt::Kind::for_, line};
        s.targets.push_back(expect_name());
        while (is_op(",")) {
            next();
            s.targets.push_back(expect_name());
        }
        if (!is_name("in")) fail("expected 'in' in a for loop, found " + describe(peek()));
        next();
        s.expr = parse_or(); // not parse_expr: `if` after the iterable is the loop's filter
        if (is_name("if")) {
            next();
            s.filter = parse_expr();
        }
        if (is_name("recursive")) fail("unsupported Jinja construct: recursive for loops");
        expect_tag_end();
        std::string end;
        s.body = parse_body({"else", "endfor"}, end);
        expect_tag_end();
        if (end == "else") {
            s.else_body = parse_body({"endfor"}, end);
            expect_tag_end();
        }
        return s;
    }

    Stmt parse_set(int line) {
        Stmt s{Stmt::Kind::set, line};
        s.text = expect_name();
        if (is_op(".")) {
            next();
            s.attr = expect_name();
        } else {
            s.targets.push_back(s.text);
            while (is_op(",")) {
                next();
                s.targets.push_back(expect_name());
            }
        }
        if (peek().kind == Token::Kind::tag_end && s.attr.empty() && s.targets.size() == 1) {
            next();
            s.kind = Stmt::Kind::set_block;
            std::string end;
            s.body = parse_body({"endset"}, end);
            expect_tag_end();
            return s;
        }
        expect_op("=");
        s.expr = parse_tuple_or_expr();
        expect_tag_end();
        return s;
    }

    Stmt parse_macro(int line) {
        Stmt s{Stmt::Kind::macro, line};
        s.text = expect_name();
        expect_op("(");
        while (!is_op(")")) {
            std::string param = expect_name();
            ExprPtr def;
            if (is_op("=")) {
                next();
                def = parse_expr();
            }
            s.params.emplace_back(std::move(param), std::move(def));
            if (!is_op(")")) expect_op(",");
        }
        next();
        expect_tag_end();
        std::string end;
        s.body = parse_body({"endmacro"}, end);
        expect_tag_end();
        return s;
    }

    ExprPtr make(Expr::Kind k, int line, std::string name = {}) {
        auto e = std::make_unique<Expr>();
        e->kind = k;
        e->line = line;
        e->name = std::move(name);
        return e;
    }
    ExprPtr binary(std::string op, ExprPtr l, ExprPtr r) {
        ExprPtr e = make(Expr::Kind::binary, l->line, std::move(op));
        e->args.push_back(std::move(l));
        e->args.push_back(std::move(r));
        return e;
    }

    // `set a, b = 1, 2`: a bare tuple on the right.
    ExprPtr parse_tuple_or_expr() {
        ExprPtr first = parse_expr();
        if (!is_op(",")) return first;
        ExprPtr list = make(Expr::Kind::list, first->line);
        list->args.push_back(std::move(first));
        while (is_op(",")) {
            next();
            list->args.push_back(parse_expr());
        }
        return list;
    }

public:
    ExprPtr parse_expr() {
        DepthGuard guard(depth_, *this);
        ExprPtr value = parse_or();
        if (!is_name("if")) return value;
        next();
        ExprPtr e = make(Expr::Kind::cond, value->line);
        e->args.push_back(std::move(value));
        e->args.push_back(parse_or());
        if (is_name("else")) {
            next();
            e->args.push_back(parse_expr());
        } else {
            e->args.push_back(nullptr);
        }
        return e;
    }

private:
    ExprPtr parse_or() {
        ExprPtr l = parse_and();
        while (is_name("or")) {
            next();
            l = binary("or", std::move(l), parse_and());
        }
        return l;
    }
    ExprPtr parse_and() {
        ExprPtr l = parse_not();
        while (is_name("and")) {
            next();
            l = binary("and", std::move(l), parse_not());
        }
        return l;
    }
    ExprPtr parse_not() {
        if (!is_name("not")) return parse_compare();
        DepthGuard guard(depth_, *this);
        const int line = next().line;
        ExprPtr e = make(Expr::Kind::unary, line, "not");
        e->args.push_back(parse_not());
        return e;
    }
    ExprPtr parse_compare() {
        ExprPtr l = parse_math1();
        for (;;) {
            std::string op;
            if (peek().kind == Token::Kind::op &&
                (is_op("==") || is_op("!=") || is_op("<") || is_op("<=") || is_op(">") || is_op(">="))) {
                op = next().text;
            } else if (is_name("in")) {
                next();
                op = "in";
            } else if (is_name("not") && is_name("in", 1)) {
                i_ += 2;
                op = "not in";
            } else {
                return l;
            }
            // A chain a < b < c is rare in templates; it reads as (a < b) and (b < c) in Python.
            l = binary(op, std::move(l), parse_math1());
        }
    }
    ExprPtr parse_math1() {
        ExprPtr l = parse_concat();
        while (is_op("+") || is_op("-")) {
            const std::string op = next().text;
            l = binary(op, std::move(l), parse_concat());
        }
        return l;
    }
    ExprPtr parse_concat() {
        ExprPtr l = parse_math2();
        while (is_op("~")) {
            next();
            l = binary("~", std::move(l), parse_math2());
        }
        return l;
    }
    ExprPtr parse_math2() {
        ExprPtr l = parse_pow();
        while (is_op("*") || is_op("/") || is_op("//") || is_op("%")) {
            const std::string op = next().text;
            l = binary(op, std::move(l), parse_pow());
        }
        return l;
    }
    ExprPtr parse_pow() {
        ExprPtr l = parse_unary(true);
        while (is_op("**")) {
            next();
            l = binary("**", std::move(l), parse_unary(true));
        }
        return l;
    }
    ExprPtr parse_unary(bool with_filter) {
        DepthGuard guard(depth_, *this);
        ExprPtr e;
        if (is_op("-") || is_op("+")) {
            const Token& t = next();
            e = make(Expr::Kind::unary, t.line, t.text);
            e->args.push_back(parse_unary(false));
        } else {
            e = parse_postfix(parse_primary());
        }
        return with_filter ? parse_filters(std::move(e)) : std::move(e);
    }

    ExprPtr parse_primary();
    ExprPtr parse_postfix(ExprPtr e);
    ExprPtr parse_filters(ExprPtr e);
    void parse_call_args(Expr& call);
    ExprPtr parse_subscript(ExprPtr obj);

    const std::vector<Token>& t_;
    size_t i_ = 0;
    int depth_ = 0;
};

ExprPtr Parser::parse_primary() {
    const Token& t = peek();
    switch (t.kind) {
    case Token::Kind::string: {
        ExprPtr e = make(Expr::Kind::literal, t.line);
        std::string s = next().text;
        while (peek().kind == Token::Kind::string) s += next().text; // 'a' 'b' is 'ab', as in Python
        e->literal = Value(std::move(s));
        return e;
    }
    case Token::Kind::integer:
    case Token::Kind::real: {
        ExprPtr e = make(Expr::Kind::literal, t.line);
        e->literal = t.kind == Token::Kind::integer ? Value(t.int_value) : Value(t.real_value);
        next();
        return e;
    }
    case Token::Kind::name: {
        next();
        ExprPtr e = make(Expr::Kind::literal, t.line);
        if (t.text == "true" || t.text == "True") e->literal = Value(true);
        else if (t.text == "false" || t.text == "False") e->literal = Value(false);
        else if (t.text == "none" || t.text == "None") e->literal = Value::none();
        else return make(Expr::Kind::name, t.line, t.text);
        return e;
    }
    case Token::Kind::op:
        if (t.text == "(") {
            next();
            if (is_op(")")) { // () is an empty tuple
                next();
                return make(Expr::Kind::list, t.line);
            }
            ExprPtr e = parse_tuple_or_expr();
            expect_op(")");
            return e;
        }
        if (t.text == "[" || t.text == "{") {
            const bool dict = t.text == "{";
            next();
            ExprPtr e = make(dict ? Expr::Kind::dict : Expr::Kind::list, t.line);
            while (!is_op(dict ? "}" : "]")) {
                e->args.push_back(parse_expr());
                if (dict) {
                    expect_op(":");
                    e->args.push_back(parse_expr());
                }
                if (!is_op(dict ? "}" : "]")) expect_op(",");
            }
            next();
            return e;
        }
        break;
    default: break;
    }
    fail("expected an expression, found " + describe(t));
}

ExprPtr Parser::parse_postfix(ExprPtr e) {
    for (;;) {
        if (is_op(".")) {
            next();
            const Token& t = peek();
            if (t.kind == Token::Kind::integer) { // x.0 is x[0]
                ExprPtr item = make(Expr::Kind::item, t.line);
                item->args.push_back(std::move(e));
                ExprPtr key = make(Expr::Kind::literal, t.line);
                key->literal = Value(next().int_value);
                item->args.push_back(std::move(key));
                e = std::move(item);
                continue;
            }
            ExprPtr a = make(Expr::Kind::attr, t.line, expect_name());
            a->args.push_back(std::move(e));
            e = std::move(a);
        } else if (is_op("[")) {
            next();
            e = parse_subscript(std::move(e));
        } else if (is_op("(")) {
            next();
            ExprPtr c = make(Expr::Kind::call, e->line);
            c->args.push_back(std::move(e));
            parse_call_args(*c);
            e = std::move(c);
        } else {
            return e;
        }
    }
}

ExprPtr Parser::parse_subscript(ExprPtr obj) {
    const int line = obj->line;
    ExprPtr parts[3];
    int colons = 0;
    while (!is_op("]")) {
        if (is_op(":")) {
            if (++colons > 2) fail("a slice has at most two ':'");
            next();
            continue;
        }
        if (parts[colons]) fail("expected ':' or ']' in a subscript, found " + describe(peek()));
        parts[colons] = parse_expr();
    }
    next();
    if (colons == 0) {
        if (!parts[0]) fail("an empty subscript []");
        ExprPtr e = make(Expr::Kind::item, line);
        e->args.push_back(std::move(obj));
        e->args.push_back(std::move(parts[0]));
        return e;
    }
    ExprPtr e = make(Expr::Kind::slice, line);
    e->args.push_back(std::move(obj));
    for (auto& p : parts) e->args.push_back(std::move(p));
    return e;
}

void Parser::parse_call_args(Expr& call) {
    while (!is_op(")")) {
        if (peek().kind == Token::Kind::name && is_op("=", 1)) {
            std::string key = next().text;
            next();
            call.kwargs.emplace_back(std::move(key), parse_expr());
        } else {
            if (!call.kwargs.empty()) fail("a positional argument after a keyword argument");
            call.args.push_back(parse_expr());
        }
        if (!is_op(")")) expect_op(",");
    }
    next();
}

ExprPtr Parser::parse_filters(ExprPtr e) {
    for (;;) {
        if (is_op("|")) {
            next();
            const int line = peek().line;
            ExprPtr f = make(Expr::Kind::filter, line, expect_name());
            f->args.push_back(std::move(e));
            if (is_op("(")) {
                next();
                parse_call_args(*f);
            }
            e = std::move(f);
        } else if (is_name("is")) {
            next();
            const int line = peek().line;
            bool negated = false;
            if (is_name("not")) {
                next();
                negated = true;
            }
            ExprPtr test = make(Expr::Kind::test, line, expect_name());
            test->negated = negated;
            test->args.push_back(std::move(e));
            if (is_op("(")) {
                next();
                parse_call_args(*test);
            } else if (peek().kind == Token::Kind::string || peek().kind == Token::Kind::integer ||
                       peek().kind == Token::Kind::real ||
                       (peek().kind == Token::Kind::name && !is_name("and") && !is_name("or") && !is_name("else") &&
                        !is_name("if") && !is_name("in") && !is_name("not") && !is_name("is"))) {
                test->args.push_back(parse_postfix(parse_primary())); // `is divisibleby 3`, `is sameas none`
            }
            e = std::move(test);
        } else {
            return e;
        }
    }
}

} // namespace

Body parse(const std::vector<Token>& tokens) { return Parser(tokens).parse_template(); }

} // namespace rabbit::jinja
