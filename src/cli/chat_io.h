// SPDX-License-Identifier: Apache-2.0
// rabbit chat's terminal side: reading turns (libedit's line editing and history on a
// terminal, plain lines otherwise), and showing an answer's thinking section dimmed or not at
// all.
#pragma once

#include <optional>
#include <string>

namespace rabbit {

// The next line of input, without its newline; nullopt at the end of input. On a terminal,
// with line editing and history; a Ctrl-C while editing gives an empty line.
class LineReader {
public:
    explicit LineReader(bool terminal) : terminal_(terminal) {}
    std::optional<std::string> next(const char* prompt);
    bool terminal() const { return terminal_; }

private:
    bool terminal_;
};

// Streams an answer's text, finding the thinking section between <think> and </think> (the
// tags may arrive split across pieces): shown as it is, dimmed (on a terminal) or hidden.
class ThinkFilter {
public:
    enum class Mode { show, dim, hide };
    // inside: the prompt opened the section itself (QwQ and R1's templates end with <think>).
    ThinkFilter(Mode mode, bool inside) : mode_(mode), inside_(inside) {}
    // The text to print now.
    std::string push(const std::string& text);
    std::string finish(); // what is held back, at the end of the answer

private:
    std::string emit(const std::string& s, bool thinking) const;
    Mode mode_;
    bool inside_;
    bool skip_newlines_ = false; // after a hidden section: the blank lines that followed it go too
    std::string pending_;
};

// Whether a rendered prompt leaves a thinking section open: its last <think> after its last
// </think>.
bool opens_thinking(const std::string& prompt);

} // namespace rabbit
