// SPDX-License-Identifier: Apache-2.0
// rabbit's Jinja interpreter piece by piece: whitespace control, expressions, filters, tests,
// string methods, loops, scoping, macros, against what jinja2 renders in transformers'
// environment (scripts/jinja_unit_reference.py wrote interpreter.expected.json); and the
// errors: a one-line message naming the construct and the template's line, never a crash.
#include "common/error.h"
#include "common/json_read.h"
#include "helpers.h"
#include "tokenizer/chat.h"
#include "tokenizer/jinja.h"

#include <catch2/catch.hpp>

#include <ctime>

using namespace rabbit;
using Catch::Contains;

namespace {

std::string render(const std::string& source, const jinja::Dict& vars = {}) {
    return jinja::Template(source, "t.jinja").render(vars);
}

// The error a template gives, parsing or rendering: its exit code and its one-line message.
std::pair<ExitCode, std::string> error_of(const std::string& source, const jinja::Dict& vars = {}) {
    try {
        render(source, vars);
    } catch (const Error& e) {
        return {e.code(), e.what()};
    }
    return {ExitCode::ok, ""};
}

} // namespace

TEST_CASE("the interpreter renders each construct as jinja2 does", "[tokenizer][jinja]") {
    const std::string path = test::source_dir() + "/tests/data/chat_templates/interpreter.expected.json";
    JsonDocument doc(test::read_file(path), path);
    // strftime_now as chat.cpp provides it, at the reference's fixed moment.
    ChatTemplate t;
    ChatOptions options;
    std::tm now{};
    now.tm_year = 2025 - 1900, now.tm_mon = 2, now.tm_mday = 14, now.tm_hour = 9, now.tm_min = 26, now.tm_sec = 53;
    options.now = now;
    size_t n = 0;
    for (auto c : json_to_array(doc.root(), path, "cases")) {
        const auto obj = json_to_object(c, path, "case");
        INFO(json_to_string(*json_field(obj, "name"), path, "name"));
        t.jinja = json_to_string(*json_field(obj, "template"), path, "template");
        t.source = "case.jinja";
        const jinja::Value vars = jinja_value_from_json(*json_field(obj, "vars"));
        CHECK(render_chat_context(t, vars.as_dict(), options) == json_to_string(*json_field(obj, "output"), path, "output"));
        ++n;
    }
    CHECK(n >= 17);
}

TEST_CASE("values print as Python prints them", "[tokenizer][jinja]") {
    CHECK(jinja::py_float_repr(0.1) == "0.1");
    CHECK(jinja::py_float_repr(1e16) == "1e+16");
    CHECK(jinja::py_float_repr(1e15) == "1000000000000000.0");
    CHECK(jinja::py_float_repr(0.0001) == "0.0001");
    CHECK(jinja::py_float_repr(0.00001) == "1e-05");
    CHECK(jinja::py_float_repr(-2.5) == "-2.5");
    CHECK(render("{{ x }}", {{"x", jinja::Value(jinja::List{jinja::Value("it's"), jinja::Value::none()})}}) == "[\"it's\", None]");
    CHECK(render("{{ 'a' 'b' }}") == "ab");
    CHECK(render("{{ '\\u00e9\\x41\\101' }}") == "\xC3\xA9" "AA");
}

TEST_CASE("a malformed template is a one-line error naming the line, not a crash", "[tokenizer][jinja]") {
    const std::pair<const char*, const char*> bad[] = {
        {"{% if x %}never closed", "expected {% endif %}"},
        {"{% for x in y %}\n{% endif %}", "{% endif %} where {% endfor %} was expected"},
        {"a\n{{ x ", "never closed with }}"},
        {"{# open", "never closed with #}"},
        {"{{ 'abc }}", "string literal is never closed"},
        {"{{ x | }}", "expected a name"},
        {"{% endif %}", "without the block it closes"},
        {"{{ 1 + }}", "expected an expression"},
        {"{{ x $ y }}", "unexpected character '$'"},
        {"{{ f(a=1, 2) }}", "a positional argument after a keyword argument"},
    };
    for (const auto& [source, what] : bad) {
        INFO(source);
        const auto [code, message] = error_of(source);
        CHECK(code == ExitCode::bad_input);
        CHECK_THAT(message, Contains(what) && Contains("t.jinja: chat template line "));
        CHECK(message.find('\n') == std::string::npos);
    }
    CHECK_THAT(error_of("\n\n{{ 1 + }}").second, Contains("line 3"));
    // Deep nesting is refused before the stack runs out.
    const std::string deep = "{{ " + std::string(5000, '(') + "1" + std::string(5000, ')') + " }}";
    CHECK_THAT(error_of(deep).second, Contains("nests more than 200 levels"));
    std::string nested_ifs;
    for (int i = 0; i < 300; ++i) nested_ifs += "{% if true %}";
    CHECK_THAT(error_of(nested_ifs).second, Contains("nests more than 200 levels"));
    CHECK_THAT(error_of("{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}").second, Contains("recurses deeper than 100"));
}

TEST_CASE("a construct the interpreter lacks is unsupported, named, up front", "[tokenizer][jinja]") {
    const std::pair<const char*, const char*> lacking[] = {
        {"{% if false %}{{ x | wordwrap }}{% endif %}", "the filter 'wordwrap'"},
        {"{% if false %}{{ x is escaped }}{% endif %}", "the test 'escaped'"},
        {"{% include 'other.jinja' %}", "{% include %}"},
        {"{% raw %}{{ x }}{% endraw %}", "{% raw %}"},
        {"{% filter upper %}x{% endfilter %}", "{% filter %}"},
        {"{% for x in y recursive %}{% endfor %}", "recursive for loops"},
    };
    for (const auto& [source, what] : lacking) {
        INFO(source);
        const auto [code, message] = error_of(source);
        CHECK(code == ExitCode::unsupported);
        CHECK_THAT(message, Contains("unsupported Jinja construct") && Contains(what));
    }
    // Through render_chat the message also names the fallback.
    ChatTemplate t;
    t.jinja = "{% include 'x' %}";
    t.source = "tokenizer_config.json";
    CHECK_THROWS_WITH(render_chat(t, {{"user", "hi"}}, {}),
                      Contains("tokenizer_config.json") && Contains("--chat-format chatml|llama3|llama2|mistral"));
}

TEST_CASE("runtime errors are bad_input with jinja2's reason", "[tokenizer][jinja]") {
    CHECK_THAT(error_of("{{ u.x }}").second, Contains("'u' is undefined"));
    CHECK_THAT(error_of("{{ 'a' + 1 }}").second, Contains("unsupported operand types for +: 'str' and 'int'"));
    CHECK_THAT(error_of("{{ 1 // 0 }}").second, Contains("division by zero"));
    CHECK_THAT(error_of("{{ raise_exception('Roles must alternate') }}").second,
               Contains("refuses this conversation: Roles must alternate"));
    CHECK_THAT(error_of("{% for x in none %}{% endfor %}").second, Contains("'NoneType' object is not iterable"));
    CHECK_THAT(error_of("{% set x = 1 %}{% set x.a = 2 %}").second, Contains("not a namespace()"));
    CHECK_THAT(error_of("{{ x() }}", {{"x", jinja::Value(int64_t(1))}}).second, Contains("'int' object is not callable"));
    CHECK(error_of("{{ u.x }}").first == ExitCode::bad_input);
    // Where Python's unbounded integers and a hostile template's appetite part from rabbit's.
    CHECK_THAT(error_of("{{ 9223372036854775807 + 1 }}").second, Contains("integer overflow"));
    CHECK_THAT(error_of("{{ 2 ** 64 }}").second, Contains("integer overflow"));
    CHECK(render("{{ 3 ** 3 }} {{ 2 ** -1 }}") == "27 0.5");
    CHECK_THAT(error_of("{{ 'ab' * 1000000000 }}").second, Contains("more than 256 MiB"));
    CHECK_THAT(error_of("{% for i in range(1000) %}{% for j in range(1000) %}{% endfor %}{% endfor %}").second,
               Contains("more than 1,000,000 loop passes"));
    CHECK_THAT(error_of("{{ range(10000000) }}").second, Contains("more than a million"));
    CHECK_THAT(error_of("{% set d = {} %}{{ d['a\nb'].x }}").second, Contains("'a\\nb'")); // one line still
}
