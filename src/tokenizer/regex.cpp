// SPDX-License-Identifier: Apache-2.0
#define PCRE2_CODE_UNIT_WIDTH 8
#include "tokenizer/regex.h"

#include "common/error.h"
#include "tokenizer/utf8.h"

#include <pcre2.h>

namespace rabbit {

namespace {
// Oniguruma's word characters under Unicode, as the reference shows them: Alphabetic, marks,
// every number, connector punctuation (not the joiners). PCRE2 10.42's \w is \p{L}, \p{N}, _.
constexpr const char* k_word = "\\p{Alphabetic}\\p{M}\\p{N}\\p{Pc}";
} // namespace

std::string oniguruma_to_pcre2(std::string_view p) {
    std::string out;
    out.reserve(p.size() + 16);
    int class_depth = 0;
    for (size_t i = 0; i < p.size(); ++i) {
        const char c = p[i];
        if (c == '\\' && i + 1 < p.size()) {
            const char e = p[i + 1];
            ++i;
            if (e == 's') out += "\\p{White_Space}";
            else if (e == 'S') out += "\\P{White_Space}";
            else if (e == 'w') out += class_depth ? k_word : std::string("[") + k_word + "]";
            else if (e == 'W' && !class_depth) out += std::string("[^") + k_word + "]";
            else if (e == 'h') out += class_depth ? "0-9a-fA-F" : "[0-9a-fA-F]";
            else if (e == 'H' && !class_depth) out += "[^0-9a-fA-F]";
            else if ((e == 'W' || e == 'H') && class_depth)
                throw Error(ExitCode::unsupported, std::string("regex: \\") + e + " inside a character class is not supported");
            else {
                out += '\\';
                out += e;
            }
            continue;
        }
        if (c == '[') {
            // "[[:alpha:]]" style POSIX classes nest one level without changing meaning.
            ++class_depth;
            out += c;
            if (i + 1 < p.size() && p[i + 1] == '^') out += p[++i];
            if (i + 1 < p.size() && p[i + 1] == ']') out += p[++i]; // a literal ] first in the class
            continue;
        }
        if (c == ']' && class_depth) --class_depth;
        out += c;
    }
    return out;
}

void Regex::compile(const std::string& pattern, const std::string& context) {
    int err = 0;
    PCRE2_SIZE offset = 0;
    code_ = pcre2_compile(reinterpret_cast<PCRE2_SPTR>(pattern.data()), pattern.size(), PCRE2_UTF | PCRE2_UCP, &err,
                          &offset, nullptr);
    if (!code_) {
        PCRE2_UCHAR msg[256];
        pcre2_get_error_message(err, msg, sizeof msg);
        throw bad_input(context, "regex '" + pattern + "' does not compile at offset " + std::to_string(offset) + ": " +
                                     reinterpret_cast<const char*>(msg));
    }
    jit_ = pcre2_jit_compile(code_, PCRE2_JIT_COMPLETE) == 0;
    if (jit_) {
        jit_stack_ = pcre2_jit_stack_create(32 * 1024, 4 * 1024 * 1024, nullptr);
        match_context_ = pcre2_match_context_create(nullptr);
        pcre2_jit_stack_assign(match_context_, nullptr, jit_stack_);
    }
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
    if (jit_stack_) pcre2_jit_stack_free(jit_stack_);
    if (code_) pcre2_code_free(code_);
}

Regex::Regex(Regex&& o) noexcept
    : code_(o.code_), jit_stack_(o.jit_stack_), match_context_(o.match_context_), jit_(o.jit_) {
    o.code_ = nullptr;
    o.jit_stack_ = nullptr;
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
        const int rc = jit_ ? pcre2_jit_match(code_, subject, s.size(), last_end, 0, md, match_context_)
                            : pcre2_match(code_, subject, s.size(), last_end, PCRE2_NO_UTF_CHECK, md, nullptr);
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
