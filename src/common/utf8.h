// SPDX-License-Identifier: Apache-2.0
// UTF-8 primitives the tokenizer needs: stepping through code points, validity, the lossy
// conversion Rust's String::from_utf8_lossy performs (one U+FFFD per maximal invalid
// subpart), which the reference tokenizer's byte-level decoder uses, and GPT-2's byte
// alphabet, which byte-level vocabularies (tokenizer.json's and GGUF's) spell tokens in.
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

// GPT-2's byte-level alphabet: printable Latin-1 bytes stand for themselves, the others for
// U+0100 onwards in byte order. byte_to_unicode(b) is b's character in UTF-8;
// unicode_to_byte(cp) the byte a character stands for, or -1 when it is none of them.
const std::string& byte_to_unicode(unsigned char b);
int unicode_to_byte(char32_t cp);

} // namespace rabbit
