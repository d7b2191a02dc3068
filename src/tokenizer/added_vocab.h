// SPDX-License-Identifier: Apache-2.0
// Added tokens (special or not) of tokenizer.json: matched in the text before the model sees
// it, leftmost-longest, honouring single_word, lstrip, rstrip. Tokens with normalized=false
// are matched in the raw input; those with normalized=true in the normalized text, in their
// normalized form (tinystories-656k's "<|end_story|>" is matched as "▁<|end_story|>").
#pragma once

#include "tokenizer/components.h"

#include <cstdint>
#include <optional>
#include <string>
#include <unordered_map>
#include <vector>

namespace rabbit {

struct AddedToken {
    int32_t id = 0;
    std::string content;
    bool single_word = false, lstrip = false, rstrip = false, normalized = true, special = false;
    std::string pattern; // what is matched: content, or its normalized form when normalized
};

// A stretch of the input: either text still to tokenize, or one added token.
struct Split {
    std::string text;
    int32_t token = -1; // the added token's id, or -1 for text
    bool at_start = false;
};

class AddedVocabulary {
public:
    // normalizer: the tokenizer's, for the normalized forms (may be null).
    void build(std::vector<AddedToken> tokens, const Normalizer* normalizer);

    // Splits each text split on the tokens of one kind (normalized or not); token splits
    // pass through.
    void split(std::vector<Split>& splits, bool normalized) const;

    const AddedToken* by_id(int32_t id) const;
    std::optional<int32_t> by_content(const std::string& content) const;
    // The string the reference decodes an added token as: its normalized form when it has
    // one, else its content.
    const std::string* decode_string(int32_t id) const;
    // Whether a token string names a special token (by content, as the reference checks it).
    bool is_special_content(const std::string& s) const;
    const std::vector<AddedToken>& tokens() const { return tokens_; }

private:
    std::vector<AddedToken> tokens_;
    std::unordered_map<int32_t, size_t> by_id_;
    std::unordered_map<std::string, int32_t> by_content_;
    std::unordered_map<std::string, bool> special_contents_;
    // Per first byte, candidate token indices, longest pattern first; one table per kind.
    std::vector<std::vector<size_t>> first_byte_[2];
};

bool is_unicode_white_space(char32_t c);

} // namespace rabbit
