// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/tokenizer.h"

namespace rabbit {

namespace {

constexpr char k_fffd[] = "\xEF\xBF\xBD";

// The text without its trailing run of U+FFFD: an incomplete character decodes as U+FFFD
// (one, or one per byte of the whole byte-fallback run it ends), and what it becomes is only
// known when its last byte arrives.
size_t settled_length(const std::string& s) {
    size_t n = s.size();
    while (n >= 3 && s.compare(n - 3, 3, k_fffd) == 0) n -= 3;
    return n;
}

} // namespace

// After the reference's DecodeStream: decode a short window of ids (the last emitted ones
// give context, so that decoders that treat the first token specially stay right) and emit
// what it adds beyond what was already emitted, holding back a trailing U+FFFD run until the
// character it stands for is complete (a real U+FFFD comes out with the next character, or
// at finish()).
std::string StreamDecoder::push(int32_t id) {
    ids_.push_back(id);
    std::string text = tok_.decode(ids_, skip_special_);
    if (text.compare(0, prefix_.size(), prefix_) != 0) {
        // The new token changed text already emitted: a byte-fallback run that decoded as
        // complete characters went on with bytes that, so far, make it invalid, so the whole
        // run reads as U+FFFD. What was emitted stays; the window starts again at this token.
        // (The reference raises an error here.)
        ids_.assign(1, id);
        prefix_.clear();
        prefix_index_ = 0;
        text = tok_.decode(ids_, skip_special_);
    }
    const size_t settled = settled_length(text);
    if (settled <= prefix_.size()) return {};
    std::string fresh = text.substr(prefix_.size(), settled - prefix_.size());
    if (settled == text.size()) {
        // Everything is final: the window restarts from the tokens just emitted.
        const size_t keep = ids_.size() - prefix_index_;
        ids_.erase(ids_.begin(), ids_.begin() + long(prefix_index_));
        prefix_ = tok_.decode(ids_, skip_special_);
        prefix_index_ = keep;
    } else {
        prefix_ = text.substr(0, settled); // emitted up to here; the window stays
    }
    return fresh;
}

std::string StreamDecoder::finish() {
    std::string text = tok_.decode(ids_, skip_special_);
    std::string rest = text.compare(0, prefix_.size(), prefix_) == 0 ? text.substr(prefix_.size()) : std::string();
    ids_.clear();
    prefix_.clear();
    prefix_index_ = 0;
    return rest;
}

} // namespace rabbit
