// SPDX-License-Identifier: Apache-2.0
// A small streaming JSON writer (simdjson only reads). Produces valid, readable JSON:
// objects one member per line, arrays opened with compact=true on one line.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

namespace rabbit {

class JsonWriter {
public:
    explicit JsonWriter(bool pretty = true) : pretty_(pretty) {}

    JsonWriter& begin_object();
    JsonWriter& end_object();
    JsonWriter& begin_array(bool compact = false);
    JsonWriter& end_array();
    JsonWriter& key(std::string_view k);

    JsonWriter& value(std::string_view s);
    JsonWriter& value(const char* s) { return value(std::string_view(s)); }
    JsonWriter& value(const std::string& s) { return value(std::string_view(s)); }
    JsonWriter& value(bool b);
    JsonWriter& value(int64_t v);
    JsonWriter& value(uint64_t v);
    JsonWriter& value(int v) { return value(int64_t(v)); }
    JsonWriter& value(unsigned v) { return value(uint64_t(v)); }
    JsonWriter& value(double v);
    JsonWriter& null();
    // Inserts already-serialized JSON as one value.
    JsonWriter& raw(std::string_view json);

    template <typename T>
    JsonWriter& member(std::string_view k, const T& v) {
        key(k);
        return value(v);
    }

    const std::string& str() const { return out_; }

private:
    struct Level {
        bool is_array;
        bool compact;
        bool empty;
    };
    void before_value();
    void newline();

    std::string out_;
    std::vector<Level> stack_;
    bool pretty_;
    bool after_key_ = false;
};

std::string json_escape(std::string_view s); // with the surrounding quotes

// "[1, 2, 3]": a list of integers as one line of JSON (shapes in messages, ids on stdout).
template <typename Int>
std::string json_int_list(const std::vector<Int>& v) {
    std::string s = "[";
    for (size_t i = 0; i < v.size(); ++i) {
        if (i) s += ", ";
        s += std::to_string(v[i]);
    }
    return s + "]";
}

} // namespace rabbit
