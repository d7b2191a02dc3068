// SPDX-License-Identifier: Apache-2.0
// The tokens and syntax tree of rabbit's Jinja subset: what the lexer, the parser and the
// renderer share (internal to src/tokenizer/jinja_*.cpp).
#pragma once

#include "tokenizer/jinja_value.h"

#include <memory>
#include <string>
#include <vector>

namespace rabbit::jinja {

// A template error: the message names the construct; the line is the template's, 1-based.
struct TemplateError {
    std::string message;
    int line = 0;
};

struct Token {
    enum class Kind { text, var_begin, block_begin, tag_end, name, string, integer, real, op, end };
    Kind kind;
    std::string text; // the text, the name, the string's value or the operator
    int line = 0;
    int64_t int_value = 0;
    double real_value = 0;
};

// The template as tokens, with jinja2's whitespace rules (trim_blocks and lstrip_blocks on, as
// transformers sets them; '-' and '+' beside a tag; comments dropped) already applied to the text.
std::vector<Token> lex(const std::string& source);

struct Expr;
using ExprPtr = std::unique_ptr<Expr>;

struct Expr {
    enum class Kind { literal, name, list, dict, attr, item, slice, call, filter, test, unary, binary, cond };
    Kind kind;
    int line = 0;
    Value literal;
    std::string name;          // name; attribute; filter or test; operator
    std::vector<ExprPtr> args; // operands, described in parser.cpp (nullptr for an omitted slice part)
    std::vector<std::pair<std::string, ExprPtr>> kwargs;
    bool negated = false; // `is not`
};

struct Stmt;
using Body = std::vector<Stmt>;

struct Stmt {
    enum class Kind { text, output, if_, for_, set, set_block, macro, break_, continue_ };
    Kind kind;
    int line = 0;
    std::string text;                  // text; the name set; the macro's name
    std::string attr;                  // set ns.attr = ...
    std::vector<std::string> targets;  // for's loop variables; set a, b = ...
    ExprPtr expr;                      // output; for's iterable; set's value
    ExprPtr filter;                    // for ... if filter
    std::vector<std::pair<ExprPtr, Body>> branches; // if / elif
    Body body, else_body;              // for, set_block, macro; if's and for's else
    std::vector<std::pair<std::string, ExprPtr>> params; // macro parameters and their defaults
};

// Parses the tokens into statements; throws TemplateError.
Body parse(const std::vector<Token>& tokens);

} // namespace rabbit::jinja
