// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/tokenizer.h"

namespace rabbit {

namespace {
bool ends_with_replacement(const std::string& s) { return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0; }
} // namespace

// As the reference's DecodeStream: decode a short window of ids (the last emitted ones give
// context, so that decoders that treat the first token specially stay right), emit what it
// adds beyond the window's known prefix once that does not end in an incomplete character.
std::string StreamDecoder::push(int32_t id) {
    if (prefix_.empty() && !ids_.empty()) {
        std::string p = tok_.decode(ids_, skip_special_);
        if (!ends_with_replacement(p)) {
            prefix_ = std::move(p);
            prefix_index_ = ids_.size();
        }
    }
    ids_.push_back(id);
    std::string text = tok_.decode(ids_, skip_special_);
    if (text.size() > prefix_.size() && !ends_with_replacement(text) && text.compare(0, prefix_.size(), prefix_) == 0) {
        std::string fresh = text.substr(prefix_.size());
        const size_t keep = ids_.size() - prefix_index_;
        ids_.erase(ids_.begin(), ids_.begin() + long(prefix_index_));
        prefix_ = tok_.decode(ids_, skip_special_);
        prefix_index_ = keep;
        return fresh;
    }
    return {};
}

std::string StreamDecoder::finish() {
    std::string text = tok_.decode(ids_, skip_special_);
    std::string rest = text.size() > prefix_.size() && text.compare(0, prefix_.size(), prefix_) == 0 ? text.substr(prefix_.size())
                                                                                                      : std::string();
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return rest;
}

} // namespace rabbit
