// SPDX-License-Identifier: Apache-2.0
// The Jinja lexer: text and tags, with jinja2's whitespace rules as transformers configures
// its environment (trim_blocks=True, lstrip_blocks=True, keep_trailing_newline=False).
#include "tokenizer/jinja_ast.h"

#include "common/utf8.h"

#include <algorithm>
#include <cstring>

namespace rabbit::jinja {

namespace {

bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
bool is_name_start(char c) { return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_'; }
bool is_digit(char c) { return c >= '0' && c <= '9'; }

// jinja2 reads the template line by line and joins the lines with "\n", which also drops one
// trailing newline.
std::string normalize_newlines(const std::string& s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] == '\r') {
            out += '\n';
            if (i + 1 < s.size() && s[i + 1] == '\n') ++i;
        } else {
            out += s[i];
        }
    }
    if (!out.empty() && out.back() == '\n') out.pop_back();
    return out;
}

int hex_value(char c) {
    if (is_digit(c)) return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

// A string literal's body with Python's escapes (jinja2 decodes them with "unicode-escape").
std::string unescape(const std::string& s, int line) {
    std::string out;
    for (size_t i = 0; i < s.size(); ++i) {
        if (s[i] != '\\' || i + 1 == s.size()) {
            out += s[i];
            continue;
        }
        const char c = s[++i];
        switch (c) {
        case 'n': out += '\n'; break;
        case 't': out += '\t'; break;
        case 'r': out += '\r'; break;
        case '\\': out += '\\'; break;
        case '\'': out += '\''; break;
        case '"': out += '"'; break;
        case 'a': out += '\a'; break;
        case 'b': out += '\b'; break;
        case 'f': out += '\f'; break;
        case 'v': out += '\v'; break;
        case '\n': break; // a backslash before a newline joins the lines
        case 'x':
        case 'u':
        case 'U': {
            const size_t n = c == 'x' ? 2 : c == 'u' ? 4 : 8;
            char32_t cp = 0;
            for (size_t k = 0; k < n; ++k) {
                const int h = i + 1 + k < s.size() ? hex_value(s[i + 1 + k]) : -1;
                if (h < 0) throw TemplateError{std::string("malformed \\") + c + " escape in a string literal", line};
                cp = cp * 16 + char32_t(h);
            }
            if (cp > 0x10FFFF) throw TemplateError{"a \\U escape beyond U+10FFFF in a string literal", line};
            utf8_append(out, cp);
            i += n;
            break;
        }
        default:
            if (c >= '0' && c <= '7') {
                char32_t cp = 0;
                size_t k = 0;
                for (; k < 3 && i + k < s.size() && s[i + k] >= '0' && s[i + k] <= '7'; ++k) cp = cp * 8 + char32_t(s[i + k] - '0');
                utf8_append(out, cp);
                i += k - 1;
            } else {
                out += '\\'; // Python keeps unknown escapes as they are
                out += c;
            }
        }
    }
    return out;
}

class Lexer {
public:
    explicit Lexer(const std::string& source) : src_(normalize_newlines(source)) {}

    std::vector<Token> run() {
        while (pos_ < src_.size()) {
            size_t p = src_.find('{', pos_);
            while (p != std::string::npos && p + 1 < src_.size() && !std::strchr("{%#", src_[p + 1])) p = src_.find('{', p + 1);
            if (p == std::string::npos || p + 1 >= src_.size()) {
                add_text(src_.substr(pos_));
                break;
            }
            text_before_tag(p);
            const char kind = src_[p + 1];
            size_t q = p + 2;
            if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) ++q;
            line_ += count_lines(pos_, q);
            pos_ = q;
            if (kind == '#') {
                comment();
            } else {
                tokens_.push_back({kind == '{' ? Token::Kind::var_begin : Token::Kind::block_begin, "", line_});
                tag(kind == '{');
            }
        }
        tokens_.push_back({Token::Kind::end, "", line_});
        return std::move(tokens_);
    }

private:
    int count_lines(size_t from, size_t to) const {
        int n = 0;
        for (size_t i = from; i < to && i < src_.size(); ++i) n += src_[i] == '\n';
        return n;
    }

    void add_text(std::string text) {
        if (text.empty()) return;
        const int lines = int(std::count(text.begin(), text.end(), '\n'));
        tokens_.push_back({Token::Kind::text, std::move(text), line_});
        line_ += lines;
    }

    // The text up to the tag at p, less the whitespace that '-' or lstrip_blocks removes.
    void text_before_tag(size_t p) {
        std::string text = src_.substr(pos_, p - pos_);
        const char kind = src_[p + 1];
        const char sign = p + 2 < src_.size() ? src_[p + 2] : 0;
        const size_t full = text.size();
        if (sign == '-') {
            size_t e = text.size();
            while (e > 0 && is_space(text[e - 1])) --e;
            text.resize(e);
        } else if (sign != '+' && kind != '{') {
            // lstrip_blocks: spaces and tabs from the line's start up to a block or comment tag.
            const size_t l = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
            if (l > 0 || line_starting_) {
                bool blank = l < text.size();
                for (size_t i = l; i < text.size(); ++i) blank = blank && is_space(text[i]);
                if (blank) text.resize(l);
            }
        }
        const int dropped = count_lines(pos_ + text.size(), pos_ + full);
        add_text(std::move(text));
        line_ += dropped;
        pos_ = p;
    }

    // After a tag's end: '-' drops the whitespace that follows, trim_blocks one newline after a
    // block or comment tag.
    void after_tag_end(char sign, bool block) {
        if (sign == '-') {
            while (pos_ < src_.size() && is_space(src_[pos_])) line_ += src_[pos_++] == '\n';
        } else if (sign != '+' && block && pos_ < src_.size() && src_[pos_] == '\n') {
            ++pos_;
            ++line_;
        }
        line_starting_ = pos_ > 0 && src_[pos_ - 1] == '\n';
    }

    void comment() {
        const size_t e = src_.find("#}", pos_);
        if (e == std::string::npos) throw TemplateError{"a comment {# is never closed with #}", line_};
        const char sign = e > pos_ && (src_[e - 1] == '-' || src_[e - 1] == '+') ? src_[e - 1] : 0;
        line_ += count_lines(pos_, e + 2);
        pos_ = e + 2;
        after_tag_end(sign, true);
    }

    // Ends the tag when pos_ is at its end marker ("}}" or "%}", maybe after '-' or '+').
    bool at_tag_end(bool var) {
        const char close = var ? '}' : '%';
        size_t q = pos_;
        char sign = 0;
        if (q < src_.size() && (src_[q] == '-' || src_[q] == '+')) sign = src_[q++];
        if (q + 1 >= src_.size() || src_[q] != close || src_[q + 1] != '}') return false;
        if (sign == '+' && var) return false;
        pos_ = q + 2;
        tokens_.push_back({Token::Kind::tag_end, "", line_});
        after_tag_end(sign, !var);
        return true;
    }

    void tag(bool var) {
        int depth = 0; // open brackets: "}}" inside {'a': {'b': 1}} does not end the tag
        for (;;) {
            while (pos_ < src_.size() && is_space(src_[pos_])) line_ += src_[pos_++] == '\n';
            if (pos_ >= src_.size())
                throw TemplateError{std::string("a tag ") + (var ? "{{ is never closed with }}" : "{% is never closed with %}"), line_};
            if (depth == 0 && at_tag_end(var)) return;
            const char c = src_[pos_];
            if (is_name_start(c)) {
                size_t e = pos_;
                while (e < src_.size() && (is_name_start(src_[e]) || is_digit(src_[e]))) ++e;
                tokens_.push_back({Token::Kind::name, src_.substr(pos_, e - pos_), line_});
                pos_ = e;
            } else if (is_digit(c)) {
                number();
            } else if (c == '\'' || c == '"') {
                string_literal(c);
            } else {
                op(depth);
            }
        }
    }

    void number() {
        size_t e = pos_;
        bool real = false;
        while (e < src_.size() && (is_digit(src_[e]) || src_[e] == '_')) ++e;
        if (e + 1 < src_.size() && src_[e] == '.' && is_digit(src_[e + 1])) {
            real = true;
            for (++e; e < src_.size() && (is_digit(src_[e]) || src_[e] == '_');) ++e;
        }
        if (e < src_.size() && (src_[e] == 'e' || src_[e] == 'E')) {
            size_t k = e + 1;
            if (k < src_.size() && (src_[k] == '+' || src_[k] == '-')) ++k;
            if (k < src_.size() && is_digit(src_[k])) {
                real = true;
                for (e = k; e < src_.size() && is_digit(src_[e]);) ++e;
            }
        }
        std::string digits;
        for (size_t i = pos_; i < e; ++i)
            if (src_[i] != '_') digits += src_[i];
        Token t{real ? Token::Kind::real : Token::Kind::integer, digits, line_};
        try {
            if (real) t.real_value = std::stod(digits);
            else t.int_value = std::stoll(digits);
        } catch (const std::exception&) {
            throw TemplateError{"the number " + digits + " is out of range", line_};
        }
        tokens_.push_back(t);
        pos_ = e;
    }

    void string_literal(char quote) {
        size_t e = pos_ + 1;
        while (e < src_.size() && src_[e] != quote) e += src_[e] == '\\' ? 2 : 1;
        if (e >= src_.size()) throw TemplateError{"a string literal is never closed", line_};
        const std::string body = src_.substr(pos_ + 1, e - pos_ - 1);
        tokens_.push_back({Token::Kind::string, unescape(body, line_), line_});
        line_ += int(std::count(body.begin(), body.end(), '\n'));
        pos_ = e + 1;
    }

    void op(int& depth) {
        static const char* const two[] = {"//", "**", "==", "!=", "<=", ">="};
        for (const char* t : two) {
            if (src_.compare(pos_, 2, t) == 0) {
                tokens_.push_back({Token::Kind::op, t, line_});
                pos_ += 2;
                return;
            }
        }
        const char c = src_[pos_];
        if (!std::strchr("+-*/%~<>=()[]{},.:|", c))
            throw TemplateError{std::string("unexpected character '") + c + "' in a tag", line_};
        if (c == '(' || c == '[' || c == '{') ++depth;
        if ((c == ')' || c == ']' || c == '}') && depth > 0) --depth;
        tokens_.push_back({Token::Kind::op, std::string(1, c), line_});
        ++pos_;
    }

    std::string src_;
    size_t pos_ = 0;
    int line_ = 1;
    bool line_starting_ = true;
    std::vector<Token> tokens_;
};

} // namespace

std::vector<Token> lex(const std::string& source) { return Lexer(source).run(); }

} // namespace rabbit::jinja
