// SPDX-License-Identifier: Apache-2.0
// Regular expressions of tokenizer.json (Split pre-tokenizers, Replace normalizers), written
// for Oniguruma, the engine of the reference implementation, and run here by PCRE2 with its
// JIT. The two agree on these patterns once a few escapes are translated (see regex.cpp).
#pragma once

#include <cstddef>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

struct pcre2_real_code_8;
struct pcre2_real_match_context_8;

namespace rabbit {

class Regex {
public:
    // Throws bad_input(context, ...) when the pattern does not compile.
    Regex(std::string_view oniguruma_pattern, const std::string& context);
    static Regex literal(std::string_view text, const std::string& context);
    // A pattern already in PCRE2 syntax (rabbit's own, not a tokenizer.json's).
    static Regex pcre2(const std::string& pattern, const std::string& context);
    // Whether the whole of `s` matches.
    bool full_match(std::string_view s) const;
    ~Regex();
    Regex(Regex&& other) noexcept;
    Regex& operator=(Regex&&) = delete;
    Regex(const Regex&) = delete;
    Regex& operator=(const Regex&) = delete;

    // Every match, left to right, as byte ranges [begin, end). After an empty match the
    // search resumes one character later. `subject` must be valid UTF-8.
    void find_all(std::string_view subject, std::vector<std::pair<size_t, size_t>>& out) const;

private:
    Regex() = default;
    void compile(const std::string& pcre_pattern, const std::string& context);

    pcre2_real_code_8* code_ = nullptr;
    pcre2_real_match_context_8* match_context_ = nullptr; // read-only while matching: shared by threads
    bool jit_ = false;
};

// Oniguruma (Ruby syntax) to PCRE2 syntax: \s is the White_Space property (PCRE2's lacks
// U+0085), \w is Alphabetic, marks, numbers, connector punctuation (PCRE2 10.42's is letters,
// numbers and _), \h a hex digit, \uHHHH a code point, {,n} is {0,n}, the option m is PCRE2's
// s (dot matches newline), and ^ $ always match at line boundaries (compiled MULTILINE).
// Class intersection (&&) and nested classes are refused. Known differences that remain:
// PCRE2 10.42 knows Unicode 14 (Oniguruma in the reference 16), and (?i) folds one character
// to one (ß does not match SS).
std::string oniguruma_to_pcre2(std::string_view pattern);

} // namespace rabbit
