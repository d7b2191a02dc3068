// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/tokenizer.h"

namespace rabbit {

namespace {

bool ends_with_replacement(const std::string& s) { return s.size() >= 3 && s.compare(s.size() - 3, 3, "\xEF\xBF\xBD") == 0; }

// A decoded window may end in U+FFFD because its last character is still incomplete; after
// this many tokens without one complete, the U+FFFD is taken to be real text.
constexpr size_t k_max_pending = 16;

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
    if (text.compare(0, prefix_.size(), prefix_) != 0) {
        // The new token changed text already emitted (ByteFallback turns a run of byte tokens
        // into one U+FFFD per byte once the run proves invalid). What was emitted stays; the
        // window starts again at this token. The reference raises an error here.
        ids_.assign(1, id);
        prefix_.clear();
        prefix_index_ = 0;
        text = tok_.decode(ids_, skip_special_);
    }
    const bool pending = ends_with_replacement(text) && ids_.size() - prefix_index_ < k_max_pending;
    if (text.size() <= prefix_.size() || pending) return {};
    std::string fresh = text.substr(prefix_.size());
    const size_t keep = ids_.size() - prefix_index_;
    ids_.erase(ids_.begin(), ids_.begin() + long(prefix_index_));
    prefix_ = tok_.decode(ids_, skip_special_);
    prefix_index_ = keep;
    return fresh;
}

std::string StreamDecoder::finish() {
    std::string text = tok_.decode(ids_, skip_special_);
    std::string rest;
    if (text.compare(0, prefix_.size(), prefix_) == 0) {
        rest = text.substr(prefix_.size());
    } else {
        std::vector<int32_t> tail(ids_.begin() + long(prefix_index_), ids_.end());
        rest = tok_.decode(tail, skip_special_);
    }
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return rest;
}

} // namespace rabbit
