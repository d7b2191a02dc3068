// SPDX-License-Identifier: Apache-2.0
// The stages of a tokenizer.json pipeline, each built from its JSON object:
//   normalizer      text -> text (NFC, Prepend, Replace, Sequence)
//   pre-tokenizer   pieces -> smaller pieces (Split, ByteLevel, Metaspace, Digits, Sequence)
//   decoder         token strings -> text (ByteLevel, Replace, ByteFallback, Fuse, Strip,
//                   Metaspace, Sequence)
// Semantics follow the Hugging Face `tokenizers` library, the reference rabbit's ids must
// equal; where it has quirks, they are kept and said so.
#pragma once

#include <simdjson.h>

#include <memory>
#include <string>
#include <vector>

namespace rabbit {

// What the pipeline needs to know of the normalized text's alignment to the input: whether
// its first character still comes from the start of the input (Metaspace's "first" scheme
// asks), and how many leading bytes a normalizer inserted rather than kept.
struct NormalizeState {
    bool at_start = false;
    size_t inserted_prefix = 0;
};

class Normalizer {
public:
    virtual ~Normalizer() = default;
    virtual void normalize(std::string& text, NormalizeState& state) const = 0;
    void normalize(std::string& text) const {
        NormalizeState ignored;
        normalize(text, ignored);
    }
};

// A piece of the input on its way to the model. at_start: it begins at the start of the
// original input (Metaspace's prepend_scheme "first" looks at that).
struct Piece {
    std::string text;
    bool at_start = false;
};

class PreTokenizer {
public:
    virtual ~PreTokenizer() = default;
    // Replaces each piece by the pieces it splits into; empty pieces are dropped.
    virtual void pre_tokenize(std::vector<Piece>& pieces) const = 0;
};

class Decoder {
public:
    virtual ~Decoder() = default;
    // Transforms the token strings in place; the decoded text is their concatenation.
    virtual void decode_chain(std::vector<std::string>& tokens) const = 0;
};

// nullptr for a JSON null. Throws bad_input for malformed objects and unsupported for types
// rabbit does not implement, naming `file`.
std::unique_ptr<Normalizer> make_normalizer(simdjson::dom::element e, const std::string& file);
std::unique_ptr<PreTokenizer> make_pre_tokenizer(simdjson::dom::element e, const std::string& file);
std::unique_ptr<Decoder> make_decoder(simdjson::dom::element e, const std::string& file);

} // namespace rabbit
