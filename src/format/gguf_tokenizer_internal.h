// SPDX-License-Identifier: Apache-2.0
// The pieces of gguf_tokenizer.cpp, apart so that each file keeps to one concern and the tests
// can reach them: the pipeline by pre type, the byte-level spelling, merges rebuilt from a vocab.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace rabbit::gguf_tok {

// The parts of a byte-level BPE's tokenizer.json that tokenizer.ggml.pre decides (JSON text).
struct Gpt2Pipeline {
    std::string normalizer = "null";
    std::string pre_tokenizer;
    bool ignore_merges = false;
};
// Throws unsupported(file, ...) for a pre type it does not know.
Gpt2Pipeline gpt2_pipeline(const std::string& pre, const std::string& file);

// The byte offsets where each character of `s` starts, and s.size() last; false when `s` is
// not valid UTF-8.
bool utf8_boundaries(const std::string& s, std::vector<size_t>& starts);
bool in_byte_alphabet(const std::string& token);
// `token` as a byte-level vocabulary spells it: itself when it already is, else byte by byte.
std::string byte_level_spelling(const std::string& token);

using Merge = std::pair<std::string, std::string>;

// The merges a SentencePiece-style vocab implies, best first, as Hugging Face's converter
// derives them: every split of a token into two vocab tokens, ranked by the token's score
// (descending), then by the longer left part, then the longer right part.
// tokens: [n] (unique), scores: [n].
std::vector<Merge> merges_by_score(const std::vector<std::string>& tokens, const std::vector<float>& scores);

// The merges of a vocabulary a BPE trainer wrote in merge order (ids = creation order), for a
// vocab whose scores say nothing (the llama_hf converter writes -1000 for all): each token in id
// order is encoded with the merges found so far; when that gives exactly two tokens, they are
// its merge. normal[i]: whether token i came out of a merge (not special, not a byte).
std::vector<Merge> merges_by_id(const std::vector<std::string>& tokens, const std::vector<bool>& normal);

} // namespace rabbit::gguf_tok
