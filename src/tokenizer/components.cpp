// SPDX-License-Identifier: Apache-2.0
#include "tokenizer/components.h"

#include "common/error.h"
#include "common/json_read.h"
#include "tokenizer/regex.h"
#include "tokenizer/utf8.h"

#include <utf8proc.h>

#include <array>
#include <cstdlib>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;

namespace {

std::string type_of(object o, const std::string& file, const char* what) {
    auto t = json_field(o, "type");
    if (!t) throw bad_input(file, std::string(what) + " has no type");
    return json_to_string(*t, file, std::string(what) + " type");
}

element need(object o, const char* key, const std::string& file, const std::string& what) {
    auto e = json_field(o, key);
    if (!e) throw bad_input(file, what + " lacks '" + key + "'");
    return *e;
}

// {"String": "x"} or {"Regex": "x"}: the patterns of Split and Replace.
Regex make_pattern(element e, const std::string& file, const std::string& what) {
    object o = json_to_object(e, file, what + " pattern");
    if (auto s = json_field(o, "String")) return Regex::literal(json_to_string(*s, file, what + " pattern"), file);
    if (auto r = json_field(o, "Regex")) return Regex(json_to_string(*r, file, what + " pattern"), file);
    throw bad_input(file, what + " pattern is neither {\"String\": ...} nor {\"Regex\": ...}");
}

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

// ---- the byte-level alphabet ----------------------------------------------------------------

struct ByteAlphabet {
    std::array<std::string, 256> to_unicode;
    std::array<int, 512> to_byte; // code points used are all below 512
    ByteAlphabet() {
        to_byte.fill(-1);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
            utf8_append(to_unicode[size_t(b)], cp);
            to_byte[cp] = b;
        }
    }
};

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

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

std::string replace_matches(const std::vector<std::pair<size_t, size_t>>& m, const std::string& content,
                            const std::string& text) {
    if (m.empty()) return text;
    std::string out;
    out.reserve(text.size());
    size_t last = 0;
    for (auto [b, e] : m) {
        out.append(text, last, b - last);
        out += content;
        last = e;
    }
    out.append(text, last, std::string::npos);
    return out;
}

std::string replace_all(const Regex& re, const std::string& content, const std::string& text) {
    std::vector<std::pair<size_t, size_t>> m;
    re.find_all(text, m);
    return replace_matches(m, content, text);
}

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
        const ByteAlphabet& a = alphabet();
        for (auto& p : out) {
            std::string mapped;
            mapped.reserve(p.text.size() * 2);
            for (unsigned char c : p.text) mapped += a.to_unicode[c];
            p.text.swap(mapped);
        }
        pieces.swap(out);
    }

private:
    bool add_prefix_space_, use_regex_;
    Regex gpt2_;
};

enum class PrependScheme { always, first, never };

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

// ---- decoders ------------------------------------------------------------------------------

class ByteLevelDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string bytes;
        for (const auto& t : tokens) {
            // A token with a character outside the alphabet contributes its own bytes.
            std::string mapped;
            bool ok = true;
            for (size_t i = 0; i < t.size() && ok;) {
                const int b = unicode_to_byte(utf8_next(t, i));
                if (b < 0) ok = false;
                else mapped += char(b);
            }
            bytes += ok ? mapped : t;
        }
        tokens.assign(1, utf8_lossy(bytes));
    }
};

class ReplaceDecoder : public Decoder {
public:
    ReplaceDecoder(Regex re, std::string content) : re_(std::move(re)), content_(std::move(content)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (auto& t : tokens) t = replace_all(re_, content_, t);
    }

private:
    Regex re_;
    std::string content_;
};

class ByteFallbackDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::vector<std::string> out;
        std::string pending;
        auto flush = [&] {
            if (pending.empty()) return;
            if (utf8_valid(pending)) out.push_back(pending);
            else
                for (size_t i = 0; i < pending.size(); ++i) out.push_back("\xEF\xBF\xBD"); // one U+FFFD per byte
            pending.clear();
        };
        for (auto& t : tokens) {
            int byte = -1;
            if (t.size() == 6 && t.compare(0, 3, "<0x") == 0 && t[5] == '>') {
                char* end = nullptr;
                const std::string hex = t.substr(3, 2);
                const long v = std::strtol(hex.c_str(), &end, 16);
                if (end == hex.c_str() + 2 && std::isxdigit((unsigned char)hex[0]) && std::isxdigit((unsigned char)hex[1]))
                    byte = int(v);
            }
            if (byte >= 0) {
                pending += char(byte);
            } else {
                flush();
                out.push_back(std::move(t));
            }
        }
        flush();
        tokens.swap(out);
    }
};

class FuseDecoder : public Decoder {
public:
    void decode_chain(std::vector<std::string>& tokens) const override {
        std::string all;
        for (const auto& t : tokens) all += t;
        tokens.assign(1, std::move(all));
    }
};

class StripDecoder : public Decoder {
public:
    StripDecoder(char32_t content, size_t start, size_t stop) : content_(content), start_(start), stop_(stop) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (auto& t : tokens) {
            std::vector<std::pair<size_t, char32_t>> chars; // (byte offset, code point)
            for (size_t i = 0; i < t.size();) {
                const size_t b = i;
                chars.emplace_back(b, utf8_next(t, i));
            }
            size_t start_cut = 0;
            for (size_t i = 0; i < start_ && i < chars.size() && chars[i].second == content_; ++i) start_cut = i + 1;
            size_t stop_cut = chars.size();
            for (size_t i = 0; i < stop_ && i < chars.size(); ++i) {
                const size_t index = chars.size() - i - 1;
                if (chars[index].second != content_) break;
                stop_cut = index;
            }
            if (start_cut >= stop_cut) {
                t.clear();
                continue;
            }
            const size_t b = chars[start_cut].first;
            const size_t e = stop_cut < chars.size() ? chars[stop_cut].first : t.size();
            t = t.substr(b, e - b);
        }
    }

private:
    char32_t content_;
    size_t start_, stop_;
};

class MetaspaceDecoder : public Decoder {
public:
    MetaspaceDecoder(std::string replacement, PrependScheme scheme) : replacement_(std::move(replacement)), scheme_(scheme) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (size_t i = 0; i < tokens.size(); ++i) {
            std::string out;
            const std::string& t = tokens[i];
            for (size_t p = 0; p < t.size();) {
                if (t.compare(p, replacement_.size(), replacement_) == 0) {
                    // The reference drops every replacement character of the first token
                    // (not only a leading one) unless the scheme is "never".
                    if (!(i == 0 && scheme_ != PrependScheme::never)) out += ' ';
                    p += replacement_.size();
                } else {
                    out += t[p++];
                }
            }
            tokens[i] = std::move(out);
        }
    }

private:
    std::string replacement_;
    PrependScheme scheme_;
};

class SequenceDecoder : public Decoder {
public:
    explicit SequenceDecoder(std::vector<std::unique_ptr<Decoder>> parts) : parts_(std::move(parts)) {}
    void decode_chain(std::vector<std::string>& tokens) const override {
        for (const auto& p : parts_) p->decode_chain(tokens);
    }

private:
    std::vector<std::unique_ptr<Decoder>> parts_;
};

bool optional_bool(object o, const char* key, bool fallback, const std::string& file) {
    auto e = json_field(o, key);
    if (!e || e->is_null()) return fallback;
    return json_to_bool(*e, file, key);
}

// Metaspace's replacement character and prepend scheme, as its deserializer reads them.
std::pair<std::string, PrependScheme> metaspace_settings(object o, const std::string& file) {
    const std::string rep = json_to_string(need(o, "replacement", file, "Metaspace"), file, "Metaspace replacement");
    size_t i = 0;
    if (rep.empty() || utf8_sequence_length(rep, 0) != rep.size() || (utf8_next(rep, i), i != rep.size()))
        throw bad_input(file, "Metaspace replacement must be one character");
    PrependScheme scheme = PrependScheme::always;
    if (auto s = json_field(o, "prepend_scheme"); s && !s->is_null()) {
        const std::string v = json_to_string(*s, file, "prepend_scheme");
        if (v == "always") scheme = PrependScheme::always;
        else if (v == "first") scheme = PrependScheme::first;
        else if (v == "never") scheme = PrependScheme::never;
        else throw bad_input(file, "unknown prepend_scheme '" + v + "'");
    }
    if (auto a = json_field(o, "add_prefix_space"); a && !a->is_null() && !json_to_bool(*a, file, "add_prefix_space")) {
        if (json_field(o, "prepend_scheme") && scheme != PrependScheme::never)
            throw bad_input(file, "Metaspace add_prefix_space does not match its prepend_scheme");
        scheme = PrependScheme::never;
    }
    return {rep, scheme};
}

// The parts of a Sequence, each built by `make` (which gives nullptr for a JSON null).
template <typename Part, typename Make>
std::vector<std::unique_ptr<Part>> sequence_parts(object o, const char* key, const std::string& file, Make make) {
    std::vector<std::unique_ptr<Part>> parts;
    for (auto p : json_to_array(need(o, key, file, std::string("Sequence ") + key), file, key))
        if (auto part = make(p, file)) parts.push_back(std::move(part));
    return parts;
}

} // namespace

const std::string& byte_to_unicode(unsigned char b) { return alphabet().to_unicode[b]; }

int unicode_to_byte(char32_t cp) { return cp < 512 ? alphabet().to_byte[cp] : -1; }

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

std::unique_ptr<Decoder> make_decoder(element e, const std::string& file) {
    if (e.is_null()) return nullptr;
    object o = json_to_object(e, file, "decoder");
    const std::string type = type_of(o, file, "decoder");
    if (type == "ByteLevel") return std::make_unique<ByteLevelDecoder>();
    if (type == "Replace")
        return std::make_unique<ReplaceDecoder>(make_pattern(need(o, "pattern", file, "Replace"), file, "Replace"),
                                                json_to_string(need(o, "content", file, "Replace"), file, "content"));
    if (type == "ByteFallback") return std::make_unique<ByteFallbackDecoder>();
    if (type == "Fuse") return std::make_unique<FuseDecoder>();
    if (type == "Strip") {
        const std::string content = json_to_string(need(o, "content", file, "Strip"), file, "Strip content");
        size_t i = 0;
        if (content.empty() || utf8_sequence_length(content, 0) != content.size())
            throw bad_input(file, "Strip content must be one character");
        return std::make_unique<StripDecoder>(utf8_next(content, i),
                                              size_t(json_to_uint(need(o, "start", file, "Strip"), file, "start")),
                                              size_t(json_to_uint(need(o, "stop", file, "Strip"), file, "stop")));
    }
    if (type == "Metaspace") {
        auto [rep, scheme] = metaspace_settings(o, file);
        return std::make_unique<MetaspaceDecoder>(rep, scheme);
    }
    if (type == "Sequence")
        return std::make_unique<SequenceDecoder>(sequence_parts<Decoder>(o, "decoders", file, make_decoder));
    throw unsupported(file, "decoder type '" + type + "' is not supported (rabbit supports ByteLevel, Replace, "
                                                     "ByteFallback, Fuse, Strip, Metaspace and Sequence)");
}

} // namespace rabbit
