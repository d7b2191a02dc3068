// SPDX-License-Identifier: Apache-2.0
// A GGUF's tokenizer (its tokenizer.ggml.* keys) written as the Hugging Face files rabbit's
// tokenizer already reads: tokenizer.json, tokenizer_config.json, generation_config.json.
// The GGUF reader fills GgufVocab; splitting a GGUF writes these three files into the split.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

// tokenizer.ggml.* of a GGUF, as read (ids are token ids). The keys: model, pre, tokens,
// scores, token_type, merges, bos_token_id, eos_token_id, unknown_token_id, padding_token_id,
// eot_token_id, add_bos_token, add_eos_token, add_space_prefix; and tokenizer.chat_template.
// A key the file lacks stays empty / nullopt.
struct GgufVocab {
    std::string model;               // tokenizer.ggml.model: "gpt2" (byte-level BPE) or "llama" (SentencePiece)
    std::string pre;                 // tokenizer.ggml.pre: "qwen2", "smollm", "llama-bpe", "gpt2", "default", ...; may be empty
    std::vector<std::string> tokens; // [n_vocab]; gpt2: already in byte-level unicode form
    std::vector<float> scores;       // [n_vocab] or empty
    std::vector<int32_t> token_type; // [n_vocab] or empty: 1 normal, 2 unknown, 3 control, 4 user-defined, 5 unused, 6 byte
    std::vector<std::string> merges; // "a b", best first; gpt2 has them, llama usually not
    std::optional<int64_t> bos, eos, unk, pad, eot;
    std::optional<bool> add_bos, add_eos, add_space_prefix;
    std::optional<std::string> chat_template;
};

// The three files' contents (JSON text).
struct TokenizerFiles {
    std::string tokenizer_json;
    std::string tokenizer_config_json;
    std::string generation_config_json;
};

// Builds the Hugging Face equivalent of `v`, tokenizing exactly as the model's original
// tokenizer does. `file` names the GGUF in messages. Throws unsupported for a model or pre
// type rabbit does not know, bad_input for an inconsistent vocab (no tokens, a special id
// out of range, array lengths that differ).
TokenizerFiles tokenizer_files_from_gguf(const GgufVocab& v, const std::string& file);

} // namespace rabbit
