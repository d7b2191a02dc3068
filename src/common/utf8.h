// SPDX-License-Identifier: Apache-2.0
// UTF-8 primitives the tokenizer needs: stepping through code points, validity, and the
// lossy conversion Rust's String::from_utf8_lossy performs (one U+FFFD per maximal invalid
// subpart), which the reference tokenizer's byte-level decoder uses.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

namespace rabbit {

constexpr char32_t k_replacement_char = 0xFFFD;

// Length in bytes of the valid UTF-8 sequence starting at s[i], or 0 when invalid there.
size_t utf8_sequence_length(std::string_view s, size_t i);
// The code point starting at s[i], which must be valid; advances i past it.
char32_t utf8_next(std::string_view s, size_t& i);
void utf8_append(std::string& out, char32_t cp);
bool utf8_valid(std::string_view s);
// Invalid sequences replaced by U+FFFD, one per maximal subpart (Unicode's recommended
// practice, as Rust does).
std::string utf8_lossy(std::string_view s);
// The number of bytes at the end of s that start an incomplete (but so far valid) sequence.
size_t utf8_incomplete_tail(std::string_view s);

} // namespace rabbit
