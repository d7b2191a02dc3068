// SPDX-License-Identifier: Apache-2.0
// Small string and environment helpers that several layers need.
#pragma once

#include <cstdlib>
#include <string>
#include <string_view>

namespace rabbit {

inline bool ends_with(std::string_view s, std::string_view tail) {
    return s.size() >= tail.size() && s.compare(s.size() - tail.size(), tail.size(), tail) == 0;
}

// The variable's value, or "" when it is unset or empty (an empty setting means "not set").
inline std::string env_or_empty(const char* name) {
    const char* v = std::getenv(name);
    return v && *v ? v : "";
}

} // namespace rabbit
