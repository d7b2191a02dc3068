// SPDX-License-Identifier: Apache-2.0
// The Hugging Face tokenizer.json pipeline: added tokens, normalizer, pre-tokenizer, BPE
// model, post-processor (TemplateProcessing), decoder.
#pragma once

#include "tokenizer/added_vocab.h"
#include "tokenizer/bpe.h"
#include "tokenizer/components.h"
#include "tokenizer/tokenizer.h"

#include <simdjson.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

namespace rabbit {

class HfTokenizer : public Tokenizer {
public:
    // config_json: tokenizer_config.json's text, when the directory has one (it can turn
    // add_bos_token on or off for Llama-style tokenizers).
    static std::unique_ptr<HfTokenizer> load(const std::string& path, const std::optional<std::string>& config_json,
                                             const std::string& config_path);

    std::vector<int32_t> encode(std::string_view text, bool add_special) const override;
    std::string decode(const std::vector<int32_t>& ids, bool skip_special) const override;
    std::string piece(int32_t id) const override;
    std::optional<int32_t> token_id(std::string_view piece) const override;
    bool is_special(int32_t id) const override;
    size_t vocab_size() const override { return vocab_size_; }
    const std::string& source() const override { return path_; }

private:
    // TemplateProcessing's single-sequence template: ids before and after the sequence.
    struct Template {
        std::vector<int32_t> before, after;
    };

    // The steps of load(), in order; each reads one part of tokenizer.json (at path_).
    void load_model(simdjson::dom::object root);
    void load_added_tokens(simdjson::dom::object root);
    void load_post_processor(simdjson::dom::element e);
    Template template_processing(simdjson::dom::object o) const;
    void apply_tokenizer_config(const std::string& config_json, const std::string& config_path);
    int32_t special_id(const std::string& name, const std::string& what) const;

    std::string path_;
    AddedVocabulary added_;
    std::unique_ptr<Normalizer> normalizer_;
    std::unique_ptr<PreTokenizer> pre_tokenizer_;
    BpeModel model_;
    std::optional<Template> template_;
    std::unique_ptr<Decoder> decoder_;
    size_t vocab_size_ = 0;
};

} // namespace rabbit
