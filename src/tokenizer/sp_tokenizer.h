// SPDX-License-Identifier: Apache-2.0
// A model directory with only tokenizer.model: the SentencePiece library encodes and decodes.
#pragma once

#include "tokenizer/tokenizer.h"

#include <memory>
#include <optional>
#include <string>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace rabbit {

class SpTokenizer : public Tokenizer {
public:
    // config_json: tokenizer_config.json's text, for add_bos_token / add_eos_token
    // (default: BOS added, as LlamaTokenizer does).
    static std::unique_ptr<SpTokenizer> load(const std::string& path, const std::optional<std::string>& config_json,
                                             const std::string& config_path);
    ~SpTokenizer() override;

    std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
    std::string piece(int32_t id) const override;
    std::optional<int32_t> token_id(std::string_view piece) const override;
    bool is_special(int32_t id) const override;
    size_t vocab_size() const override;
    const std::string& source() const override { return path_; }

private:
    SpTokenizer() = default;
    std::string path_;
    std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
    bool add_bos_ = true, add_eos_ = false;
};

} // namespace rabbit
