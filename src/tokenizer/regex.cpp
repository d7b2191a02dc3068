// SPDX-License-Identifier: Apache-2.0
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include "common/error.h"
#include "common/utf8.h"

#include <pcre2.h>

#include <cctype>

namespace rabbit {

namespace {

// Oniguruma's word characters under Unicode, as the reference shows them: outside a class,
// Alphabetic, marks, every number and connector punctuation; inside a class, decimal digits
// only among the numbers ([\w] leaves out "²", \w takes it). Not the joiners either way.
// PCRE2 10.42's own \w is \p{L}, \p{N} and _.
constexpr const char* k_word = "\\p{Alphabetic}\\p{M}\\p{N}\\p{Pc}";
constexpr const char* k_word_in_class = "\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}";

bool is_hex(char c) { return std::isxdigit(static_cast<unsigned char>(c)) != 0; }

[[noreturn]] void refuse(std::string_view pattern, const std::string& what) {
    throw Error(ExitCode::unsupported, "regex '" + std::string(pattern) + "': " + what + " is not supported");
}

// One JIT stack per thread, shared by every pattern: a stack serves one match at a time.
pcre2_jit_stack* thread_jit_stack(void*) {
    struct Holder {
        pcre2_jit_stack* stack = pcre2_jit_stack_create(32 * 1024, 16 * 1024 * 1024, nullptr);
        ~Holder() { pcre2_jit_stack_free(stack); }
    };
    static thread_local Holder holder;
    return holder.stack;
}

} // namespace

std::string oniguruma_to_pcre2(std::string_view p) {
    std::string out;
    out.reserve(p.size() + 16);
    bool in_class = false;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char e = p[++i];
            if (e == 's') {
                out += "\\p{White_Space}";
            } else if (e == 'S') {
                out += "\\P{White_Space}";
            } else if (e == 'w') {
                out += in_class ? k_word_in_class : std::string("[") + k_word + "]";
            } else if (e == 'W') {
                if (in_class) refuse(p, "\\W inside a character class");
                out += std::string("[^") + k_word + "]";
            } else if (e == 'h') {
                out += in_class ? "0-9a-fA-F" : "[0-9a-fA-F]";
            } else if (e == 'H') {
                if (in_class) refuse(p, "\\H inside a character class");
                out += "[^0-9a-fA-F]";
            } else if (e == 'u' && i + 4 < p.size() && is_hex(p[i + 1]) && is_hex(p[i + 2]) && is_hex(p[i + 3]) &&
                       is_hex(p[i + 4])) {
                out += "\\x{" + std::string(p.substr(i + 1, 4)) + "}"; // Ruby's \uHHHH
                i += 4;
            } else if ((e == 'p' || e == 'P' || e == 'x') && i + 1 < p.size() && p[i + 1] == '{') {
                const size_t close = p.find('}', i + 1); // \p{L}, \x{85}: copied whole
                if (close == std::string_view::npos) refuse(p, "an unterminated \\" + std::string(1, e) + "{");
                out += '\\';
                out.append(p.substr(i, close - i + 1));
                i = close;
            } else {
                out += '\\';
                out += e;
            }
            continue;
        }
        if (in_class) {
            if (c == '[' && i + 1 < p.size() && p[i + 1] == ':') { // a POSIX class, [:alpha:]
                const size_t close = p.find(":]", i + 2);
                if (close == std::string_view::npos) refuse(p, "an unterminated POSIX class");
                out.append(p.substr(i, close + 2 - i));
                i = close + 1;
                continue;
            }
            if (c == '[') refuse(p, "a nested character class");
            if (c == '&' && i + 1 < p.size() && p[i + 1] == '&') refuse(p, "class intersection (&&)");
            if (c == ']') in_class = false;
            out += c;
            continue;
        }
        if (c == '[') {
            in_class = true;
            out += c;
            if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
            if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i]; // a literal ] first in the class
            continue;
        }
        if (c == '{' && i + 1 < p.size() && p[i + 1] == ',') { // {,n} is {0,n} in Oniguruma
            out += "{0";
            continue;
        }
        if (c == '(' && i + 2 < p.size() && p[i + 1] == '?') {
            // Option groups: Ruby's m is "dot matches newline", PCRE2's s.
            size_t j = i + 2;
            while (j < p.size() && (p[j] == 'i' || p[j] == 'm' || p[j] == 'x' || p[j] == '-')) ++j;
            if (j > i + 2 && j < p.size() && (p[j] == ':' || p[j] == ')')) {
                out += "(?";
                for (size_t k = i + 2; k < j; ++k) out += p[k] == 'm' ? 's' : p[k];
                i = j - 1;
                continue;
            }
        }
        out += c;
    }
    return out;
}

void Regex::compile(const std::string& pattern, const std::string& context) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    // Ruby syntax: ^ and $ match at every line boundary.
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(),
                          PCRE2_UTF | PCRE2_UCP | PCRE2_MULTILINE, &err, &offset, nullptr);
    if (!code_) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw bad_input(context, "regex '" + pattern + "' does not compile at offset " + std::to_string(offset) + ": " +
                                     reinterpret_cast<const char*>(msg));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
    match_context_ = pcre2_match_context_create(nullptr);
    if (jit_) pcre2_jit_stack_assign(match_context_, thread_jit_stack, nullptr);
    // For the interpreter, the fallback when a match outgrows the JIT stack: room to finish.
    pcre2_set_heap_limit(match_context_, 4u << 20); // KiB
    pcre2_set_match_limit(match_context_, 0xFFFFFFFFu);
}

Regex::Regex(std::string_view pattern, const std::string& context) { compile(oniguruma_to_pcre2(pattern), context); }

Regex Regex::literal(std::string_view text, const std::string& context) {
    Regex r;
    // \Q...\E quotes everything but "\E" itself.
    std::string quoted;
    size_t start = 0;
    for (size_t pos; (pos = text.find("\\E", start)) != std::string_view::npos; start = pos + 2)
        quoted += "\\Q" + std::string(text.substr(start, pos - start)) + "\\E\\\\E";
    quoted += "\\Q" + std::string(text.substr(start)) + "\\E";
    r.compile(quoted, context);
    return r;
}

Regex Regex::pcre2(const std::string& pattern, const std::string& context) {
    Regex r;
    r.compile(pattern, context);
    return r;
}

bool Regex::full_match(std::string_view s) const {
    std::vector<std::pair<size_t, size_t>> m;
    find_all(s, m);
    return m.size() == 1 && m[0].first == 0 && m[0].second == s.size();
}

Regex::~Regex() {
    if (match_context_) pcre2_match_context_free(match_context_);
    if (code_) pcre2_code_free(code_);
}

Regex::Regex(Regex&& o) noexcept : code_(o.code_), match_context_(o.match_context_), jit_(o.jit_) {
    o.code_ = nullptr;
    o.match_context_ = nullptr;
}

void Regex::find_all(std::string_view s, std::vector<std::pair<size_t, size_t>>& out) const {
    out.clear();
    pcre2_match_data* md = pcre2_match_data_create_from_pattern(code_, nullptr);
    if (!md) throw std::bad_alloc();
    const auto* subject = reinterpret_cast<PCRE2_SPTR>(s.data());
    // Oniguruma's iteration (as the onig crate drives it): an empty match right where the
    // previous match ended is skipped by moving on one character.
    size_t last_end = 0;
    bool have_last = false;
    size_t last_match_end = 0;
    while (last_end <= s.size()) {
        int rc = jit_ ? pcre2_jit_match(code_, subject, s.size(), last_end, 0, md, match_context_)
                      : PCRE2_ERROR_JIT_STACKLIMIT;
        if (rc == PCRE2_ERROR_JIT_STACKLIMIT) // no JIT, or a match deeper than its stack
            rc = pcre2_match(code_, subject, s.size(), last_end, PCRE2_NO_UTF_CHECK | PCRE2_NO_JIT, md, match_context_);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) {
            pcre2_match_data_free(md);
            PCRE2_UCHAR msg[256];
            pcre2_get_error_message(rc, msg, sizeof msg);
            throw Error(ExitCode::internal, std::string("regex match failed: ") + reinterpret_cast<const char*>(msg));
        }
        const PCRE2_SIZE* ov = pcre2_get_ovector_pointer(md);
        const size_t b = ov[0], e = ov[1];
        if (b == e && have_last && last_match_end == e) {
            if (last_end >= s.size()) break;
            utf8_next(s, last_end);
            continue;
        }
        out.emplace_back(b, e);
        last_end = e;
        last_match_end = e;
        have_last = true;
    }
    pcre2_match_data_free(md);
}

} // namespace rabbit
