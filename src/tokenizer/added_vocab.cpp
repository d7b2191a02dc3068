// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/added_vocab.h"

#include "tokenizer/regex.h"
#include "common/utf8.h"

#include <algorithm>

namespace rabbit {

bool is_unicode_white_space(char32_t c) {
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 || (c >= 0x2000 && c <= 0x200A) ||
           c == 0x2028 || c == 0x2029 || c == 0x202F || c == 0x205F || c == 0x3000;
}

namespace {

// \w as the reference checks single_word tokens (Rust's regex crate, Unicode): Alphabetic,
// marks, decimal digits, connector punctuation, joiners.
bool is_word_char(char32_t c) {
    static const Regex word = Regex::pcre2("[\\p{Alphabetic}\\p{M}\\p{Nd}\\p{Pc}\\p{Join_Control}]", "single_word");
    std::string s;
    utf8_append(s, c);
    return word.full_match(s);
}

char32_t last_char(const std::string& s, size_t end) {
    size_t i = end;
    while (i > 0 && (static_cast<unsigned char>(s[i - 1]) & 0xC0) == 0x80) --i;
    if (i == 0 && end == 0) return 0;
    if (i > 0) --i;
    size_t j = i;
    return utf8_next(s, j);
}

} // namespace

void AddedVocabulary::build(std::vector<AddedToken> tokens, const Normalizer* normalizer) {
    tokens_ = std::move(tokens);
    by_id_.clear();
    by_content_.clear();
    special_contents_.clear();
    for (auto& kind : first_byte_) kind.assign(256, {});
    for (size_t i = 0; i < tokens_.size(); ++i) {
        AddedToken& t = tokens_[i];
        t.pattern = t.content;
        if (t.normalized && normalizer) normalizer->normalize(t.pattern);
        by_id_[t.id] = i;
        by_content_[t.content] = t.id;
        if (t.special) special_contents_[t.content] = true;
        if (t.pattern.empty()) continue;
        first_byte_[t.normalized ? 1 : 0][static_cast<unsigned char>(t.pattern[0])].push_back(i);
    }
    for (auto& kind : first_byte_)
        for (auto& list : kind)
            std::stable_sort(list.begin(), list.end(),
                             [&](size_t a, size_t b) { return tokens_[a].pattern.size() > tokens_[b].pattern.size(); });
}

const AddedToken* AddedVocabulary::by_id(int32_t id) const {
    auto it = by_id_.find(id);
    return it == by_id_.end() ? nullptr : &tokens_[it->second];
}

std::optional<int32_t> AddedVocabulary::by_content(const std::string& content) const {
    auto it = by_content_.find(content);
    if (it == by_content_.end()) return std::nullopt;
    return it->second;
}

const std::string* AddedVocabulary::decode_string(int32_t id) const {
    const AddedToken* t = by_id(id);
    return t ? &t->pattern : nullptr;
}

bool AddedVocabulary::is_special_content(const std::string& s) const { return special_contents_.count(s) != 0; }

void AddedVocabulary::split(std::vector<Split>& splits, bool normalized) const {
    const auto& table = first_byte_[normalized ? 1 : 0];
    bool any = false;
    for (const auto& l : table) any |= !l.empty();
    if (!any) return;
    std::vector<Split> out;
    out.reserve(splits.size());
    for (auto& sp : splits) {
        if (sp.token >= 0) {
            out.push_back(std::move(sp));
            continue;
        }
        const std::string& s = sp.text;
        size_t start_offset = 0; // the end of the previous accepted match
        size_t pos = 0;          // where the matcher looks next
        auto emit_text = [&](size_t b, size_t e) {
            if (e > b) out.push_back({s.substr(b, e - b), -1, sp.at_start && b == 0});
        };
        while (pos < s.size()) {
            // Leftmost-longest: the first position where any pattern matches, the longest there.
            const AddedToken* hit = nullptr;
            size_t at = pos;
            for (; at < s.size() && !hit; ++at) {
                for (size_t idx : table[static_cast<unsigned char>(s[at])]) {
                    const AddedToken& t = tokens_[idx];
                    if (s.compare(at, t.pattern.size(), t.pattern) == 0) {
                        hit = &t;
                        break;
                    }
                }
                if (hit) break;
            }
            if (!hit) break;
            size_t start = at, stop = at + hit->pattern.size();
            pos = stop; // the matcher resumes after this match, accepted or not
            if (hit->single_word) {
                const bool space_before = start == 0 || !is_word_char(last_char(s, start));
                size_t j = stop;
                const bool space_after = stop == s.size() || !is_word_char(utf8_next(s, j));
                if (!space_before || !space_after) continue;
            }
            if (hit->lstrip) {
                size_t b = start;
                while (b > 0) {
                    size_t k = b - 1;
                    while (k > 0 && (static_cast<unsigned char>(s[k]) & 0xC0) == 0x80) --k;
                    size_t j = k;
                    if (!is_unicode_white_space(utf8_next(s, j))) break;
                    b = k;
                }
                start = std::max(b, start_offset);
            }
            if (hit->rstrip) {
                size_t e = stop;
                while (e < s.size()) {
                    size_t j = e;
                    if (!is_unicode_white_space(utf8_next(s, j))) break;
                    e = j;
                }
                stop = e;
            }
            if (start_offset < start) emit_text(start_offset, start);
            // A token squeezed to nothing (its lstrip reached into what the previous token's
            // rstrip took) is an empty split, which the reference drops.
            if (stop > start) out.push_back({s.substr(start, stop - start), hit->id, false});
            start_offset = stop;
        }
        emit_text(start_offset, s.size());
    }
    splits.swap(out);
}

} // namespace rabbit
