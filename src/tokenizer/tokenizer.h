// SPDX-License-Identifier: Apache-2.0
// Text to token ids and back, for any model rabbit runs: the Hugging Face tokenizer.json
// pipeline (hf_tokenizer.h), or SentencePiece for a directory that has only tokenizer.model.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace rabbit {

class Tokenizer {
public:
    virtual ~Tokenizer() = default;

    // add_special: what the post-processor adds (BOS for Llama-style models), as
    // `tokenizer.encode(text, add_special_tokens=True)` does. Invalid UTF-8 in `text` is read
    // as U+FFFD.
    virtual std::vector<int32_t> encode(std::string_view text, bool add_special) const = 0;
    // skip_special: leave out special tokens, as `decode(ids, skip_special_tokens=True)`.
    virtual std::string decode(const std::vector<int32_t>& ids, bool skip_special) const = 0;
    // The vocabulary string of a token ("Ġmy", "<|im_end|>"); empty for an unknown id.
    virtual std::string piece(int32_t id) const = 0;
    virtual std::optional<int32_t> token_id(std::string_view piece) const = 0;
    virtual bool is_special(int32_t id) const = 0;
    // One more than the largest id, added tokens included.
    virtual size_t vocab_size() const = 0;
    // The file it was loaded from, for messages.
    virtual const std::string& source() const = 0;
};

// Loads the tokenizer of a model directory (a split or a Hugging Face one): tokenizer.json,
// else tokenizer.model, with tokenizer_config.json when present. Throws bad_input when
// there is none or it is malformed, unsupported for pipeline parts rabbit does not run.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir);

// Streaming decode: feed ids one at a time, get text as soon as it is complete UTF-8 (never
// half a character, never text that a later token would change).
class StreamDecoder {
public:
    StreamDecoder(const Tokenizer& tok, bool skip_special) : tok_(tok), skip_special_(skip_special) {}
    // The new text this id completes (possibly empty).
    std::string push(int32_t id);
    // Whatever is still held back (an incomplete character at the end of the stream).
    std::string finish();

private:
    const Tokenizer& tok_;
    bool skip_special_;
    std::vector<int32_t> ids_;   // the window: context ids, then ids not yet fully emitted
    std::string prefix_;         // the part of the window's text already emitted (or context)
    size_t prefix_index_ = 0;    // ids_[0..prefix_index_) are context, dropped at the next restart
};

} // namespace rabbit
