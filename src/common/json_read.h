// SPDX-License-Identifier: Apache-2.0
// Reading JSON with simdjson, with errors that name the file and the field.
#pragma once

#include <simdjson.h>

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

namespace rabbit {

// Owns a parsed document. Not movable: simdjson elements point into the parser.
class JsonDocument {
public:
    // Throws bad_input(file, "is not valid JSON: ...") when text does not parse.
    JsonDocument(std::string_view text, std::string file);
    JsonDocument(const JsonDocument&) = delete;
    JsonDocument& operator=(const JsonDocument&) = delete;

    simdjson::dom::element root() const { return root_; }
    const std::string& file() const { return file_; }
    // The root as an object, or bad_input naming the file.
    simdjson::dom::object root_object() const;

private:
    simdjson::dom::parser parser_;
    simdjson::dom::element root_;
    std::string file_;
};

// A field of an object, or nullopt when absent (JSON null counts as present).
std::optional<simdjson::dom::element> json_field(simdjson::dom::object obj, std::string_view key);
// A field that is present and not JSON null, or nullopt.
std::optional<simdjson::dom::element> json_value(simdjson::dom::object obj, std::string_view key);

// Typed reads; on a wrong type they throw bad_input(file, "<what> must be <type>").
uint64_t json_to_uint(simdjson::dom::element e, const std::string& file, const std::string& what);
int64_t json_to_int(simdjson::dom::element e, const std::string& file, const std::string& what);
double json_to_double(simdjson::dom::element e, const std::string& file, const std::string& what);
bool json_to_bool(simdjson::dom::element e, const std::string& file, const std::string& what);
std::string json_to_string(simdjson::dom::element e, const std::string& file, const std::string& what);
simdjson::dom::object json_to_object(simdjson::dom::element e, const std::string& file, const std::string& what);
simdjson::dom::array json_to_array(simdjson::dom::element e, const std::string& file, const std::string& what);

// Short rendering of a value for messages: strings quoted, long values cut.
std::string json_preview(simdjson::dom::element e);

} // namespace rabbit
