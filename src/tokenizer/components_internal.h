// SPDX-License-Identifier: Apache-2.0
// What the files of the tokenizer.json components share (components.cpp holds it): reading
// their JSON objects, Replace's substitution, and Metaspace's settings (its pre-tokenizer and
// its decoder read the same ones).
#pragma once

#include "common/json_read.h"
#include "tokenizer/components.h"
#include "tokenizer/regex.h"

#include <simdjson.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace rabbit::components_detail {

// The object's "type", naming `what` when it is missing.
std::string type_of(simdjson::dom::object o, const std::string& file, const char* what);
// The field `key`, which `what` must have.
simdjson::dom::element need(simdjson::dom::object o, const char* key, const std::string& file, const std::string& what);
// {"String": "x"} or {"Regex": "x"}: the patterns of Split and Replace.
Regex make_pattern(simdjson::dom::element e, const std::string& file, const std::string& what);
// The boolean `key`, or `fallback` when it is missing or null.
bool optional_bool(simdjson::dom::object o, const char* key, bool fallback, const std::string& file);

// Each match [begin, end) of `text` replaced by `content`.
std::string replace_matches(const std::vector<std::pair<size_t, size_t>>& m, const std::string& content,
                            const std::string& text);
std::string replace_all(const Regex& re, const std::string& content, const std::string& text);

enum class PrependScheme { always, first, never };

// Metaspace's replacement character and prepend scheme, as its deserializer reads them.
std::pair<std::string, PrependScheme> metaspace_settings(simdjson::dom::object o, const std::string& file);

// The parts of a Sequence, each built by `make` (which gives nullptr for a JSON null).
template <typename Part, typename Make>
std::vector<std::unique_ptr<Part>> sequence_parts(simdjson::dom::object o, const char* key, const std::string& file,
                                                  Make make) {
    std::vector<std::unique_ptr<Part>> parts;
    for (auto p : json_to_array(need(o, key, file, std::string("Sequence ") + key), file, key))
        if (auto part = make(p, file)) parts.push_back(std::move(part));
    return parts;
}

} // namespace rabbit::components_detail
