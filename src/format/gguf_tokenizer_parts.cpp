// SPDX-License-Identifier: Apache-2.0
// The parts of a GGUF vocab's conversion that know something about tokenizers: the pipeline a
// pre type stands for, GPT-2's byte alphabet, and merges rebuilt for a vocab that has none.
#include "format/gguf_tokenizer_internal.h"

#include "common/error.h"
#include "common/utf8.h"
#include "common/json_writer.h"

#include <algorithm>
#include <array>
#include <unordered_map>

namespace rabbit {

namespace gguf_tok {

namespace {

// The Split regexes of the original tokenizer.json files (Oniguruma syntax, as there).
constexpr const char* k_qwen2_split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
constexpr const char* k_llama3_split =
    R"((?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+)";
// llama.cpp's pre type "default" (old files and an empty tokenizer.ggml.pre): four regexes
// applied one after the other, every match and every gap between matches a word of its own.
constexpr std::array<const char*, 4> k_default_splits = {
    R"([\p{P}\$\+<=>\^~\|]+)",
    R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S))",
    R"(\p{N}+)",
    R"([0-9][0-9][0-9])",
};

void split_isolated(JsonWriter& w, const char* regex) {
    w.begin_object().member("type", "Split");
    w.key("pattern").begin_object().member("Regex", regex).end_object();
    w.member("behavior", "Isolated").member("invert", false).end_object();
}

void byte_level(JsonWriter& w, bool use_regex) {
    w.begin_object().member("type", "ByteLevel").member("add_prefix_space", false).member("trim_offsets", false);
    w.member("use_regex", use_regex).end_object();
}

std::string sequence_of_splits(const std::vector<const char*>& regexes) {
    JsonWriter w;
    w.begin_object().member("type", "Sequence").key("pretokenizers").begin_array();
    for (const char* r : regexes) split_isolated(w, r);
    byte_level(w, false);
    w.end_array().end_object();
    return w.str();
}

bool one_of(const std::string& s, std::initializer_list<const char*> names) {
    for (const char* n : names)
        if (s == n) return true;
    return false;
}

} // namespace

// The pipeline of a byte-level BPE by tokenizer.ggml.pre, as the original tokenizer.json of
// the models llama.cpp maps to each name has it.
Gpt2Pipeline gpt2_pipeline(const std::string& pre, const std::string& file) {
    Gpt2Pipeline p;
    if (one_of(pre, {"qwen2", "deepseek-r1-qwen"})) {
        p.normalizer = R"({"type": "NFC"})"; // Qwen's tokenizer.json normalizes; a GGUF does not say so
        p.pre_tokenizer = sequence_of_splits({k_qwen2_split});
    } else if (one_of(pre, {"llama-bpe", "llama3", "llama-v3"})) {
        p.pre_tokenizer = sequence_of_splits({k_llama3_split});
        p.ignore_merges = true; // Llama 3 takes a word that is in the vocabulary whole
    } else if (one_of(pre, {"smollm", "starcoder"})) {
        JsonWriter w;
        w.begin_object().member("type", "Sequence").key("pretokenizers").begin_array();
        w.begin_object().member("type", "Digits").member("individual_digits", true).end_object();
        byte_level(w, true);
        w.end_array().end_object();
        p.pre_tokenizer = w.str();
    } else if (one_of(pre, {"gpt-2", "gpt2"})) {
        JsonWriter w;
        byte_level(w, true);
        p.pre_tokenizer = w.str();
    } else if (one_of(pre, {"default", ""})) {
        p.pre_tokenizer = sequence_of_splits({k_default_splits.begin(), k_default_splits.end()});
    } else {
        throw unsupported(file, "tokenizer.ggml.pre '" + pre +
                                    "' is not supported (rabbit knows qwen2, deepseek-r1-qwen, llama-bpe, llama3, "
                                    "llama-v3, smollm, starcoder, gpt-2, gpt2, default)");
    }
    return p;
}

// ---- UTF-8 and the byte-level alphabet ----------------------------------------------------------

bool utf8_boundaries(const std::string& s, std::vector<size_t>& starts) {
    starts.clear();
    for (size_t i = 0; i < s.size();) {
        const size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        starts.push_back(i);
        i += n;
    }
    starts.push_back(s.size());
    return true;
}

// Whether every character of `token` is one of GPT-2's byte alphabet (common/utf8.h): a token
// as a byte-level vocab spells it. Anything else is spelled out byte by byte, as
// transformers' GGUF loader does.
bool in_byte_alphabet(const std::string& token) {
    if (!utf8_valid(token)) return false;
    for (size_t i = 0; i < token.size();)
        if (unicode_to_byte(utf8_next(token, i)) < 0) return false;
    return true;
}

std::string byte_level_spelling(const std::string& token) {
    if (in_byte_alphabet(token)) return token;
    std::string out;
    for (unsigned char c : token) out += byte_to_unicode(c);
    return out;
}

// ---- merges rebuilt from a vocab -------------------------------------------------------------

namespace {

struct Candidate {
    Merge merge;
    float score;
    size_t left_chars, right_chars;
};

// Each character of `s` as a string; empty when `s` is not valid UTF-8.
std::vector<std::string> characters(const std::string& s) {
    std::vector<size_t> starts;
    std::vector<std::string> out;
    if (!utf8_boundaries(s, starts)) return out;
    for (size_t i = 0; i + 1 < starts.size(); ++i) out.push_back(s.substr(starts[i], starts[i + 1] - starts[i]));
    return out;
}

std::string pair_key(const std::string& a, const std::string& b) { return std::to_string(a.size()) + ':' + a + b; }

} // namespace

std::vector<Merge> merges_by_score(const std::vector<std::string>& tokens, const std::vector<float>& scores) {
    std::unordered_map<std::string, size_t> id;
    for (size_t i = 0; i < tokens.size(); ++i) id[tokens[i]] = i;
    std::vector<Candidate> all;
    std::vector<size_t> starts;
    for (size_t t = 0; t < tokens.size(); ++t) {
        const std::string& tok = tokens[t];
        if (!utf8_boundaries(tok, starts)) continue;
        const size_t n = starts.size() - 1;
        std::vector<std::pair<std::pair<size_t, size_t>, Candidate>> local;
        for (size_t k = 1; k < n; ++k) {
            auto l = id.find(tok.substr(0, starts[k]));
            auto r = id.find(tok.substr(starts[k]));
            if (l == id.end() || r == id.end()) continue;
            local.push_back({{l->second, r->second}, {{l->first, r->first}, scores[t], k, n - k}});
        }
        std::sort(local.begin(), local.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
        for (auto& c : local) all.push_back(std::move(c.second));
    }
    // Descending on (score, left length, right length); equal keys keep the order above.
    std::stable_sort(all.begin(), all.end(), [](const Candidate& a, const Candidate& b) {
        if (a.score != b.score) return a.score > b.score;
        if (a.left_chars != b.left_chars) return a.left_chars > b.left_chars;
        return a.right_chars > b.right_chars;
    });
    std::vector<Merge> out;
    out.reserve(all.size());
    for (auto& c : all) out.push_back(std::move(c.merge));
    return out;
}

std::vector<Merge> merges_by_id(const std::vector<std::string>& tokens, const std::vector<bool>& normal) {
    std::unordered_map<std::string, size_t> known;
    for (size_t i = 0; i < tokens.size(); ++i) known.emplace(tokens[i], i);
    std::unordered_map<std::string, size_t> rank; // pair_key -> merge index
    std::vector<Merge> out;
    for (size_t t = 0; t < tokens.size(); ++t) {
        if (!normal[t]) continue;
        std::vector<std::string> parts = characters(tokens[t]);
        if (parts.size() < 2) continue;
        // Plain BPE over the merges found so far: the lowest-ranked adjacent pair first.
        while (parts.size() > 2) {
            size_t best = SIZE_MAX, at = 0;
            for (size_t k = 0; k + 1 < parts.size(); ++k) {
                auto r = rank.find(pair_key(parts[k], parts[k + 1]));
                if (r != rank.end() && r->second < best) best = r->second, at = k;
            }
            if (best == SIZE_MAX) break;
            parts[at] += parts[at + 1];
            parts.erase(parts.begin() + std::ptrdiff_t(at) + 1);
        }
        if (parts.size() != 2 || !known.count(parts[0]) || !known.count(parts[1])) continue;
        if (!rank.emplace(pair_key(parts[0], parts[1]), out.size()).second) continue;
        out.emplace_back(parts[0], parts[1]);
    }
    return out;
}

} // namespace gguf_tok

} // namespace rabbit
