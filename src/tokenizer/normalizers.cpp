// SPDX-License-Identifier: Apache-2.0
// The normalizers of a tokenizer.json pipeline: text -> text.
#include "tokenizer/components.h"

#include "common/error.h"
#include "common/json_read.h"
#include "tokenizer/components_internal.h"

#include <utf8proc.h>

#include <algorithm>
#include <cstdlib>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;
using namespace components_detail;

namespace {

// ---- normalizers ---------------------------------------------------------------------------

class UnicodeNormalizer : public Normalizer {
public:
    explicit UnicodeNormalizer(utf8proc_option_t options) : options_(options) {}
    void normalize(std::string& text, NormalizeState&) const override {
        bool ascii = true;
        for (unsigned char c : text) ascii &= c < 0x80;
        if (ascii) return; // unchanged by every normalization form
        utf8proc_uint8_t* dst = nullptr;
        const auto n = utf8proc_map(reinterpret_cast<const utf8proc_uint8_t*>(text.data()), utf8proc_ssize_t(text.size()),
                                    &dst, utf8proc_option_t(options_ | UTF8PROC_STABLE));
        if (n < 0) throw Error(ExitCode::internal, std::string("unicode normalization failed: ") + utf8proc_errmsg(n));
        text.assign(reinterpret_cast<const char*>(dst), size_t(n));
        std::free(dst);
    }

private:
    utf8proc_option_t options_;
};

class PrependNormalizer : public Normalizer {
public:
    explicit PrependNormalizer(std::string prefix) : prefix_(std::move(prefix)) {}
    void normalize(std::string& text, NormalizeState& st) const override {
        if (text.empty()) return;
        text.insert(0, prefix_);
        st.inserted_prefix += prefix_.size();
    }

private:
    std::string prefix_;
};

class ReplaceNormalizer : public Normalizer {
public:
    ReplaceNormalizer(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
    void normalize(std::string& text, NormalizeState& st) const override {
        std::vector<std::pair<size_t, size_t>> m;
        re_.find_all(text, m);
        if (m.empty()) return;
        // Deleting a prefix that reaches past what was inserted loses the input's first
        // character: the new first one comes from further in.
        if (m[0].first == 0 && content_.empty() && m[0].second > st.inserted_prefix) st.at_start = false;
        if (m[0].first == 0) st.inserted_prefix = content_.empty() ? 0 : content_.size();
        else st.inserted_prefix = std::min(st.inserted_prefix, m[0].first);
        text = replace_matches(m, content_, text);
    }

private:
    Regex re_;
    std::string content_;
};

class SequenceNormalizer : public Normalizer {
public:
    explicit SequenceNormalizer(std::vector<std::unique_ptr<Normalizer>> parts) : parts_(std::move(parts)) {}
    void normalize(std::string& text, NormalizeState& st) const override {
        for (const auto& p : parts_) p->normalize(text, st);
    }

private:
    std::vector<std::unique_ptr<Normalizer>> parts_;
};

} // namespace

std::unique_ptr<Normalizer> make_normalizer(element e, const std::string& file) {
    if (e.is_null()) return nullptr;
    object o = json_to_object(e, file, "normalizer");
    const std::string type = type_of(o, file, "normalizer");
    if (type == "NFC") return std::make_unique<UnicodeNormalizer>(UTF8PROC_COMPOSE);
    if (type == "NFD") return std::make_unique<UnicodeNormalizer>(UTF8PROC_DECOMPOSE);
    if (type == "NFKC") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_COMPOSE | UTF8PROC_COMPAT));
    if (type == "NFKD") return std::make_unique<UnicodeNormalizer>(utf8proc_option_t(UTF8PROC_DECOMPOSE | UTF8PROC_COMPAT));
    if (type == "Prepend")
        return std::make_unique<PrependNormalizer>(json_to_string(need(o, "prepend", file, "Prepend"), file, "prepend"));
    if (type == "Replace")
        return std::make_unique<ReplaceNormalizer>(make_pattern(need(o, "pattern", file, "Replace"), file, "Replace"),
                                                   json_to_string(need(o, "content", file, "Replace"), file, "content"));
    if (type == "Sequence")
        return std::make_unique<SequenceNormalizer>(sequence_parts<Normalizer>(o, "normalizers", file, make_normalizer));
    throw unsupported(file, "normalizer type '" + type + "' is not supported (rabbit supports NFC, NFD, NFKC, NFKD, "
                                                        "Prepend, Replace and Sequence)");
}

} // namespace rabbit
