// SPDX-License-Identifier: Apache-2.0
#include "hub/hub_id.h"

#include <cctype>

namespace rabbit {

namespace {

// The hub's own rule for a repo name part: letters, digits, '-', '_', '.'; not starting or
// ending with '-' or '.', no "--" or "..", at most 96 characters.
bool valid_name_part(const std::string& s) {
    if (s.empty() || s.size() > 96) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.')) return false;
    if (s.front() == '-' || s.front() == '.' || s.back() == '-' || s.back() == '.') return false;
    return s.find("--") == std::string::npos && s.find("..") == std::string::npos;
}

bool valid_revision(const std::string& s) {
    if (s.empty() || s.size() > 255 || s.front() == '/' || s.find("..") != std::string::npos) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '_' || c == '.' || c == '/')) return false;
    return true;
}

bool valid_quant(const std::string& s) {
    if (s.empty() || s.size() > 32) return false;
    for (char c : s)
        if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '-')) return false;
    return true;
}

} // namespace

std::string HubId::text() const {
    std::string t = repo;
    if (revision != "main") t += "@" + revision;
    if (!quant.empty()) t += ":" + quant;
    return t;
}

bool is_commit_hash(const std::string& rev) {
    if (rev.size() != 40) return false;
    for (char c : rev)
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
    return true;
}

std::optional<HubId> parse_hub_id(const std::string& text) {
    std::string rest = text;
    HubId id;
    // ":QUANT" ends the id; a revision never holds ':'.
    if (const size_t colon = rest.rfind(':'); colon != std::string::npos) {
        id.quant = rest.substr(colon + 1);
        rest.resize(colon);
        if (!valid_quant(id.quant)) return std::nullopt;
    }
    if (const size_t at = rest.find('@'); at != std::string::npos) {
        id.revision = rest.substr(at + 1);
        rest.resize(at);
        if (!valid_revision(id.revision)) return std::nullopt;
    }
    const size_t slash = rest.find('/');
    if (slash == std::string::npos || rest.find('/', slash + 1) != std::string::npos) return std::nullopt;
    if (!valid_name_part(rest.substr(0, slash)) || !valid_name_part(rest.substr(slash + 1))) return std::nullopt;
    // "org/model.gguf" and "dir/model.safetensors" are files that are missing, not repos.
    for (const char* ext : {".gguf", ".safetensors", ".json", ".bin"}) {
        const std::string e = ext;
        if (rest.size() > e.size() && rest.compare(rest.size() - e.size(), e.size(), e) == 0) return std::nullopt;
    }
    id.repo = rest;
    return id;
}

} // namespace rabbit
