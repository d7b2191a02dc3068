// SPDX-License-Identifier: Apache-2.0
#include "cli/chat_io.h"

#include "common/interrupt.h"

#include <editline/readline.h>

#include <algorithm>
#include <cstdlib>
#include <iostream>

namespace rabbit {

namespace {
constexpr const char* k_open = "<think>";
constexpr const char* k_close = "</think>";
constexpr const char* k_dim = "\x1b[2m";
constexpr const char* k_undim = "\x1b[22m";
} // namespace

std::optional<std::string> LineReader::next(const char* prompt) {
    if (!terminal_) {
        std::string line;
        if (!std::getline(std::cin, line)) return std::nullopt;
        return line;
    }
    char* raw = readline(prompt);
    if (interrupted()) { // Ctrl-C while editing: the line is dropped, the session goes on
        clear_interrupt();
        std::free(raw);
        std::cout << "\n";
        return std::string();
    }
    if (!raw) return std::nullopt; // Ctrl-D
    std::string line(raw);
    std::free(raw);
    if (!line.empty()) add_history(line.c_str());
    return line;
}

std::string ThinkFilter::emit(const std::string& s, bool thinking) const {
    if (!thinking || s.empty() || mode_ == Mode::show) return s;
    if (mode_ == Mode::hide) return {};
    return k_dim + s + k_undim;
}

std::string ThinkFilter::push(const std::string& text) {
    pending_ += text;
    std::string out;
    while (true) {
        if (skip_newlines_) {
            while (!pending_.empty() && pending_[0] == '\n') pending_.erase(0, 1);
            if (!pending_.empty()) skip_newlines_ = false;
        }
        const std::string tag = inside_ ? k_close : k_open;
        const size_t at = pending_.find(tag);
        if (at != std::string::npos) {
            // The tags belong to the section: shown, dimmed or hidden with it.
            out += emit(pending_.substr(0, at), inside_);
            out += emit(tag, true);
            pending_.erase(0, at + tag.size());
            inside_ = !inside_;
            skip_newlines_ = !inside_ && mode_ == Mode::hide;
            continue;
        }
        // Hold back the longest tail that could begin the tag.
        size_t keep = std::min(pending_.size(), tag.size() - 1);
        while (keep > 0 && pending_.compare(pending_.size() - keep, keep, tag, 0, keep) != 0) --keep;
        out += emit(pending_.substr(0, pending_.size() - keep), inside_);
        pending_.erase(0, pending_.size() - keep);
        return out;
    }
}

std::string ThinkFilter::finish() {
    std::string out = emit(pending_, inside_);
    pending_.clear();
    return out;
}

bool opens_thinking(const std::string& prompt) {
    const size_t open = prompt.rfind(k_open);
    if (open == std::string::npos) return false;
    const size_t close = prompt.rfind(k_close);
    return close == std::string::npos || close < open;
}

} // namespace rabbit
