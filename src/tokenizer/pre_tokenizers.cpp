// SPDX-License-Identifier: Apache-2.0
// The pre-tokenizers of a tokenizer.json pipeline: pieces -> smaller pieces, split as the
// reference's NormalizedString::split does it.
#include "tokenizer/components.h"

#include "common/error.h"
#include "common/json_read.h"
#include "tokenizer/components_internal.h"
#include "common/utf8.h"

#include <utf8proc.h>

#include <algorithm>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;
using namespace components_detail;

namespace {

// ---- matching and splitting, as NormalizedString::split does it ----------------------------

struct Segment {
    size_t begin, end;
    bool match;
};

// The whole text as alternating non-matches and matches (a regex pattern).
std::vector<Segment> regex_segments(const Regex& re, const std::string& s) {
    if (s.empty()) return {{0, 0, false}};
    std::vector<std::pair<size_t, size_t>> m;
    re.find_all(s, m);
    std::vector<Segment> out;
    size_t prev = 0;
    for (auto [b, e] : m) {
        if (prev != b) out.push_back({prev, b, false});
        out.push_back({b, e, true});
        prev = e;
    }
    if (prev != s.size()) out.push_back({prev, s.size(), false});
    return out;
}

// Each character that satisfies `pred` is a match of its own (a char-predicate pattern).
template <typename Pred>
std::vector<Segment> char_segments(const std::string& s, Pred pred) {
    if (s.empty()) return {{0, 0, false}};
    std::vector<Segment> out;
    size_t last = 0;
    for (size_t i = 0; i < s.size();) {
        const size_t b = i;
        const char32_t c = utf8_next(s, i);
        if (pred(c)) {
            if (last < b) out.push_back({last, b, false});
            out.push_back({b, i, true});
            last = i;
        }
    }
    if (s.size() > last) out.push_back({last, s.size(), false});
    return out;
}

enum class Behavior { removed, isolated, merged_with_previous, merged_with_next, contiguous };

Behavior parse_behavior(const std::string& b, const std::string& file) {
    if (b == "Removed") return Behavior::removed;
    if (b == "Isolated") return Behavior::isolated;
    if (b == "MergedWithPrevious") return Behavior::merged_with_previous;
    if (b == "MergedWithNext") return Behavior::merged_with_next;
    if (b == "Contiguous") return Behavior::contiguous;
    throw bad_input(file, "unknown split behavior '" + b + "'");
}

// Turns segments into pieces according to the behavior; the piece at offset 0 keeps
// at_start, empty pieces are dropped.
void split_piece(const Piece& p, const std::vector<Segment>& segs, Behavior behavior, std::vector<Piece>& out) {
    struct Range {
        size_t begin, end;
        bool remove;
    };
    std::vector<Range> ranges;
    switch (behavior) {
    case Behavior::isolated:
        for (const auto& s : segs) ranges.push_back({s.begin, s.end, false});
        break;
    case Behavior::removed:
        for (const auto& s : segs) ranges.push_back({s.begin, s.end, s.match});
        break;
    case Behavior::contiguous: {
        bool previous = false;
        for (const auto& s : segs) {
            if (s.match == previous && !ranges.empty()) ranges.back().end = s.end;
            else ranges.push_back({s.begin, s.end, false});
            previous = s.match;
        }
        break;
    }
    case Behavior::merged_with_previous: {
        bool previous = false;
        for (const auto& s : segs) {
            if (s.match && !previous && !ranges.empty()) ranges.back().end = s.end;
            else ranges.push_back({s.begin, s.end, false});
            previous = s.match;
        }
        break;
    }
    case Behavior::merged_with_next: {
        bool previous = false;
        for (auto it = segs.rbegin(); it != segs.rend(); ++it) {
            if (it->match && !previous && !ranges.empty()) ranges.back().begin = it->begin;
            else ranges.push_back({it->begin, it->end, false});
            previous = it->match;
        }
        std::reverse(ranges.begin(), ranges.end());
        break;
    }
    }
    for (const auto& r : ranges) {
        if (r.remove || r.end == r.begin) continue;
        out.push_back({p.text.substr(r.begin, r.end - r.begin), p.at_start && r.begin == 0});
    }
}

// ---- pre-tokenizers ------------------------------------------------------------------------

class SplitPreTokenizer : public PreTokenizer {
public:
    SplitPreTokenizer(Regex re, Behavior behavior, bool invert) : re_(std::move(re)), behavior_(behavior), invert_(invert) {}
    void pre_tokenize(std::vector<Piece>& pieces) const override {
        std::vector<Piece> out;
        out.reserve(pieces.size() * 4);
        for (const auto& p : pieces) {
            std::vector<Segment> segs = regex_segments(re_, p.text);
            if (invert_)
                for (auto& s : segs) s.match = !s.match;
            split_piece(p, segs, behavior_, out);
        }
        pieces.swap(out);
    }

private:
    Regex re_;
    Behavior behavior_;
    bool invert_;
};

class ByteLevelPreTokenizer : public PreTokenizer {
public:
    ByteLevelPreTokenizer(bool add_prefix_space, bool use_regex, const std::string& file)
        : add_prefix_space_(add_prefix_space), use_regex_(use_regex),
          gpt2_(R"('s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+)", file) {}
    void pre_tokenize(std::vector<Piece>& pieces) const override {
        std::vector<Piece> out;
        out.reserve(pieces.size() * 4);
        for (auto& p : pieces) {
            if (add_prefix_space_ && (p.text.empty() || p.text[0] != ' ')) p.text.insert(0, " ");
            if (use_regex_) split_piece(p, regex_segments(gpt2_, p.text), Behavior::isolated, out);
            else if (!p.text.empty()) out.push_back(std::move(p));
        }
        for (auto& p : out) {
            std::string mapped;
            mapped.reserve(p.text.size() * 2);
            for (unsigned char c : p.text) mapped += byte_to_unicode(c);
            p.text.swap(mapped);
        }
        pieces.swap(out);
    }

private:
    bool add_prefix_space_, use_regex_;
    Regex gpt2_;
};


class MetaspacePreTokenizer : public PreTokenizer {
public:
    MetaspacePreTokenizer(std::string replacement, PrependScheme scheme, bool split)
        : replacement_(std::move(replacement)), scheme_(scheme), split_(split) {}
    void pre_tokenize(std::vector<Piece>& pieces) const override {
        std::vector<Piece> out;
        size_t i0 = 0;
        const char32_t rep = utf8_next(replacement_, i0);
        for (auto& p : pieces) {
            std::string t;
            t.reserve(p.text.size() + 8);
            for (char c : p.text) {
                if (c == ' ') t += replacement_;
                else t += c;
            }
            const bool starts = t.compare(0, replacement_.size(), replacement_) == 0;
            if (!starts && (scheme_ == PrependScheme::always || (scheme_ == PrependScheme::first && p.at_start)))
                t.insert(0, replacement_);
            Piece q{std::move(t), p.at_start};
            if (split_) split_piece(q, char_segments(q.text, [rep](char32_t c) { return c == rep; }), Behavior::merged_with_next, out);
            else if (!q.text.empty()) out.push_back(std::move(q));
        }
        pieces.swap(out);
    }

private:
    std::string replacement_;
    PrependScheme scheme_;
    bool split_;
};

bool is_numeric(char32_t c) {
    const auto cat = utf8proc_category(utf8proc_int32_t(c));
    return cat == UTF8PROC_CATEGORY_ND || cat == UTF8PROC_CATEGORY_NL || cat == UTF8PROC_CATEGORY_NO;
}

class DigitsPreTokenizer : public PreTokenizer {
public:
    explicit DigitsPreTokenizer(bool individual) : individual_(individual) {}
    void pre_tokenize(std::vector<Piece>& pieces) const override {
        std::vector<Piece> out;
        for (const auto& p : pieces)
            split_piece(p, char_segments(p.text, is_numeric), individual_ ? Behavior::isolated : Behavior::contiguous, out);
        pieces.swap(out);
    }

private:
    bool individual_;
};

class SequencePreTokenizer : public PreTokenizer {
public:
    explicit SequencePreTokenizer(std::vector<std::unique_ptr<PreTokenizer>> parts) : parts_(std::move(parts)) {}
    void pre_tokenize(std::vector<Piece>& pieces) const override {
        for (const auto& p : parts_) p->pre_tokenize(pieces);
    }

private:
    std::vector<std::unique_ptr<PreTokenizer>> parts_;
};

} // namespace

std::unique_ptr<PreTokenizer> make_pre_tokenizer(element e, const std::string& file) {
    if (e.is_null()) return nullptr;
    object o = json_to_object(e, file, "pre_tokenizer");
    const std::string type = type_of(o, file, "pre_tokenizer");
    if (type == "Split") {
        return std::make_unique<SplitPreTokenizer>(
            make_pattern(need(o, "pattern", file, "Split"), file, "Split"),
            parse_behavior(json_to_string(need(o, "behavior", file, "Split"), file, "behavior"), file),
            json_to_bool(need(o, "invert", file, "Split"), file, "invert"));
    }
    if (type == "ByteLevel")
        return std::make_unique<ByteLevelPreTokenizer>(optional_bool(o, "add_prefix_space", true, file),
                                                       optional_bool(o, "use_regex", true, file), file);
    if (type == "Metaspace") {
        auto [rep, scheme] = metaspace_settings(o, file);
        return std::make_unique<MetaspacePreTokenizer>(rep, scheme, optional_bool(o, "split", true, file));
    }
    if (type == "Digits") return std::make_unique<DigitsPreTokenizer>(optional_bool(o, "individual_digits", false, file));
    if (type == "Sequence")
        return std::make_unique<SequencePreTokenizer>(
            sequence_parts<PreTokenizer>(o, "pretokenizers", file, make_pre_tokenizer));
    throw unsupported(file, "pre_tokenizer type '" + type + "' is not supported (rabbit supports Split, ByteLevel, "
                                                           "Metaspace, Digits and Sequence)");
}

} // namespace rabbit
