// SPDX-License-Identifier: Apache-2.0
#include "common/utf8.h"

#include <array>

namespace rabbit {

namespace {

// Valid ranges of the second byte for each lead byte (Unicode Table 3-7); the rest are 80..BF.
bool second_byte_ok(unsigned char lead, unsigned char b) {
    if (lead == 0xE0) return b >= 0xA0 && b <= 0xBF;
    if (lead == 0xED) return b >= 0x80 && b <= 0x9F;
    if (lead == 0xF0) return b >= 0x90 && b <= 0xBF;
    if (lead == 0xF4) return b >= 0x80 && b <= 0x8F;
    return b >= 0x80 && b <= 0xBF;
}

size_t expected_length(unsigned char lead) {
    if (lead < 0x80) return 1;
    if (lead >= 0xC2 && lead <= 0xDF) return 2;
    if (lead >= 0xE0 && lead <= 0xEF) return 3;
    if (lead >= 0xF0 && lead <= 0xF4) return 4;
    return 0;
}

// How many bytes from s[i] form a valid prefix of a sequence (at least 1 when the lead is a
// possible lead byte), and whether that prefix is a complete sequence.
size_t valid_prefix(std::string_view s, size_t i, bool* complete) {
    const unsigned char lead = static_cast<unsigned char>(s[i]);
    const size_t need = expected_length(lead);
    *complete = false;
    if (need == 0) return 0;
    if (need == 1) {
        *complete = true;
        return 1;
    }
    size_t n = 1;
    for (; n < need && i + n < s.size(); ++n) {
        const unsigned char b = static_cast<unsigned char>(s[i + n]);
        const bool ok = n == 1 ? second_byte_ok(lead, b) : (b >= 0x80 && b <= 0xBF);
        if (!ok) return n;
    }
    *complete = n == need;
    return n;
}

} // namespace

size_t utf8_sequence_length(std::string_view s, size_t i) {
    bool complete;
    size_t n = valid_prefix(s, i, &complete);
    return complete ? n : 0;
}

char32_t utf8_next(std::string_view s, size_t& i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
        ++i;
        return c;
    }
    const size_t n = expected_length(c);
    char32_t cp = c & (n == 2 ? 0x1F : n == 3 ? 0x0F : 0x07);
    for (size_t k = 1; k < n; ++k) cp = (cp << 6) | (static_cast<unsigned char>(s[i + k]) & 0x3F);
    i += n;
    return cp;
}

void utf8_append(std::string& out, char32_t cp) {
    if (cp < 0x80) {
        out += char(cp);
    } else if (cp < 0x800) {
        out += char(0xC0 | (cp >> 6));
        out += char(0x80 | (cp & 0x3F));
    } else if (cp < 0x10000) {
        out += char(0xE0 | (cp >> 12));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    } else {
        out += char(0xF0 | (cp >> 18));
        out += char(0x80 | ((cp >> 12) & 0x3F));
        out += char(0x80 | ((cp >> 6) & 0x3F));
        out += char(0x80 | (cp & 0x3F));
    }
}

bool utf8_valid(std::string_view s) {
    for (size_t i = 0; i < s.size();) {
        size_t n = utf8_sequence_length(s, i);
        if (n == 0) return false;
        i += n;
    }
    return true;
}

std::string utf8_lossy(std::string_view s) {
    std::string out;
    out.reserve(s.size());
    for (size_t i = 0; i < s.size();) {
        bool complete;
        const size_t n = valid_prefix(s, i, &complete);
        if (complete) {
            out.append(s.substr(i, n));
            i += n;
        } else {
            utf8_append(out, k_replacement_char); // one per maximal invalid subpart
            i += n == 0 ? 1 : n;
        }
    }
    return out;
}

size_t utf8_incomplete_tail(std::string_view s) {
    // A sequence is at most 4 bytes: look for its lead among the last 3.
    for (size_t back = 1; back <= 3 && back <= s.size(); ++back) {
        const size_t i = s.size() - back;
        const unsigned char c = static_cast<unsigned char>(s[i]);
        if ((c & 0xC0) == 0x80) continue; // a continuation byte: keep looking for the lead
        bool complete;
        const size_t n = valid_prefix(s, i, &complete);
        return (!complete && n == back) ? back : 0;
    }
    return 0;
}

namespace {

struct ByteAlphabet {
    std::array<std::string, 256> to_unicode;
    std::array<int, 512> to_byte; // the code points used are all below 512
    ByteAlphabet() {
        to_byte.fill(-1);
        int n = 0;
        for (int b = 0; b < 256; ++b) {
            const bool printable = (b >= '!' && b <= '~') || (b >= 0xA1 && b <= 0xAC) || (b >= 0xAE && b <= 0xFF);
            const char32_t cp = printable ? char32_t(b) : char32_t(256 + n++);
            utf8_append(to_unicode[size_t(b)], cp);
            to_byte[cp] = b;
        }
    }
};

const ByteAlphabet& alphabet() {
    static const ByteAlphabet a;
    return a;
}

} // namespace

const std::string& byte_to_unicode(unsigned char b) { return alphabet().to_unicode[b]; }

int unicode_to_byte(char32_t cp) { return cp < 512 ? alphabet().to_byte[cp] : -1; }

} // namespace rabbit
