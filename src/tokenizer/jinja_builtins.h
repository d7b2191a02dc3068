// SPDX-License-Identifier: Apache-2.0
// Jinja's filters and tests, Python's str and dict methods, and attribute and item access, as
// jinja2's sandbox resolves them (internal to src/tokenizer/jinja_*.cpp). Errors are thrown as
// TemplateError with line 0; the renderer adds the line.
#pragma once

#include "tokenizer/jinja_ast.h"

#include <string>

namespace rabbit::jinja {

[[noreturn]] void runtime_error(const std::string& what);
[[noreturn]] void undefined_error(const Value& v); // using an undefined value where jinja2 fails

bool is_known_filter(const std::string& name);
bool is_known_test(const std::string& name);
Value apply_filter(const std::string& name, const Value& v, CallArgs& args);
bool apply_test(const std::string& name, const Value& v, CallArgs& args);

Value get_attr(const Value& obj, const std::string& name);
Value get_item(const Value& obj, const Value& key);
Value get_slice(const Value& obj, const Value& start, const Value& stop, const Value& step);
// What `for x in v` walks: a list's items, a dict's keys, a string's characters.
List iterate(const Value& v);
// Python's type name, for messages: 'str', 'int', 'NoneType'...
std::string py_type(const Value& v);

// Python's strip family: chars empty-and-absent strips whitespace.
std::string py_strip(const std::string& s, const Value& chars, bool left, bool right);

// None and an undefined value, for defaults (defined in jinja_methods.cpp).
extern const Value k_none;
extern const Value k_undef;

// The argument at position i or named `name`, or `def`.
const Value& arg(const CallArgs& a, size_t i, const char* name, const Value& def);

} // namespace rabbit::jinja
