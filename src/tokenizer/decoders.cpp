// SPDX-License-Identifier: Apache-2.0
// The decoders of a tokenizer.json pipeline: token strings -> text.
#include "tokenizer/components.h"

#include "common/error.h"
#include "common/json_read.h"
#include "tokenizer/components_internal.h"
#include "common/utf8.h"

#include <cctype>
#include <cstdlib>

namespace rabbit {

using simdjson::dom::element;
using simdjson::dom::object;
using namespace components_detail;

namespace {

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

} // namespace

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
