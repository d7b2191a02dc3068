// SPDX-License-Identifier: Apache-2.0
#include "common/json_writer.h"

#include "common/error.h"

#include <charconv>
#include <cmath>

namespace rabbit {

std::string json_escape(std::string_view s) {
    std::string out;
    out.reserve(s.size() + 2);
    out += '"';
    for (unsigned char c : s) {
        switch (c) {
        case '"': out += "\\\""; break;
        case '\\': out += "\\\\"; break;
        case '\n': out += "\\n"; break;
        case '\r': out += "\\r"; break;
        case '\t': out += "\\t"; break;
        case '\b': out += "\\b"; break;
        case '\f': out += "\\f"; break;
        default:
            if (c < 0x20) {
                static const char hex[] = "0123456789abcdef";
                out += "\\u00";
                out += hex[c >> 4];
                out += hex[c & 15];
            } else {
                out += char(c);
            }
        }
    }
    out += '"';
    return out;
}

void JsonWriter::newline() {
    if (!pretty_) return;
    out_ += '\n';
    out_.append(stack_.size() * 2, ' ');
}

void JsonWriter::before_value() {
    if (after_key_) {
        after_key_ = false;
        return;
    }
    if (stack_.empty()) return;
    Level& top = stack_.back();
    RABBIT_CHECK(top.is_array, "JSON value inside an object needs a key first");
    if (!top.empty) out_ += top.compact ? ", " : ",";
    if (!top.compact) newline();
    top.empty = false;
}

JsonWriter& JsonWriter::key(std::string_view k) {
    RABBIT_CHECK(!stack_.empty() && !stack_.back().is_array && !after_key_, "JSON key outside an object");
    Level& top = stack_.back();
    if (!top.empty) out_ += ',';
    newline();
    top.empty = false;
    out_ += json_escape(k);
    out_ += pretty_ ? ": " : ":";
    after_key_ = true;
    return *this;
}

JsonWriter& JsonWriter::begin_object() {
    before_value();
    out_ += '{';
    stack_.push_back({false, false, true});
    return *this;
}

JsonWriter& JsonWriter::end_object() {
    RABBIT_CHECK(!stack_.empty() && !stack_.back().is_array && !after_key_, "unbalanced JSON object");
    bool empty = stack_.back().empty;
    stack_.pop_back();
    if (!empty) newline();
    out_ += '}';
    return *this;
}

JsonWriter& JsonWriter::begin_array(bool compact) {
    before_value();
    out_ += '[';
    // Inside a compact array everything stays on one line.
    bool inherit = !stack_.empty() && stack_.back().compact;
    stack_.push_back({true, compact || inherit, true});
    return *this;
}

JsonWriter& JsonWriter::end_array() {
    RABBIT_CHECK(!stack_.empty() && stack_.back().is_array, "unbalanced JSON array");
    Level top = stack_.back();
    stack_.pop_back();
    if (!top.empty && !top.compact) newline();
    out_ += ']';
    return *this;
}

JsonWriter& JsonWriter::value(std::string_view s) {
    before_value();
    out_ += json_escape(s);
    return *this;
}

JsonWriter& JsonWriter::value(bool b) {
    before_value();
    out_ += b ? "true" : "false";
    return *this;
}

JsonWriter& JsonWriter::value(int64_t v) {
    before_value();
    out_ += std::to_string(v);
    return *this;
}

JsonWriter& JsonWriter::value(uint64_t v) {
    before_value();
    out_ += std::to_string(v);
    return *this;
}

JsonWriter& JsonWriter::value(double v) {
    RABBIT_CHECK(std::isfinite(v), "JSON cannot hold a non-finite number");
    before_value();
    char buf[64];
    auto res = std::to_chars(buf, buf + sizeof buf, v); // shortest form that reads back exactly
    std::string_view text(buf, size_t(res.ptr - buf));
    out_ += text;
    // Keep floats recognisable as floats: 10000 -> 10000.0
    if (text.find_first_of(".eEn") == std::string_view::npos) out_ += ".0";
    return *this;
}

JsonWriter& JsonWriter::null() {
    before_value();
    out_ += "null";
    return *this;
}

JsonWriter& JsonWriter::raw(std::string_view json) {
    before_value();
    out_ += json;
    return *this;
}

} // namespace rabbit
