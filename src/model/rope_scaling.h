// SPDX-License-Identifier: Apache-2.0
// config.json's rope_scaling (or rope_parameters) object: read, checked and written back for
// a split's manifest. Part of ModelConfig's parsing; the formulas live in src/engine/rope.cpp.
#pragma once

#include "model/config.h"

#include <simdjson.h>

#include <string>

namespace rabbit {

class JsonWriter;

// From the object `where` names in file: its rope_type (or type) and the keys that type
// needs. Throws unsupported for a type rabbit does not compute, bad_input for a missing key.
RopeScaling parse_rope_scaling(simdjson::dom::object o, const std::string& file, const std::string& where);
// The values a type needs, in range; bad_input naming file otherwise.
void validate_rope_scaling(const RopeScaling& s, const std::string& file, uint32_t head_dim);
// As parse_rope_scaling reads it back; null for none.
void write_rope_scaling(JsonWriter& w, const RopeScaling& s);
// For messages and `inspect`: "yarn", "llama3", ...
const char* rope_type_name(RopeScaling::Type t);

} // namespace rabbit
