// SPDX-License-Identifier: Apache-2.0
// One error path for everything a user can cause: an exception that carries the
// exit code, caught once in main and printed as one line.
#pragma once

#include <stdexcept>
#include <string>

namespace rabbit {

// Process exit codes. README.md's "Exit codes" table lists them: each row is "CODE | LABEL:
// TEXT", LABEL the name below (an underscore a space, "internal error" for internal) and TEXT
// starting with the comment beside it; tests/test_cli.cpp holds the two (and `rabbit --help`'s
// footer) in step.
enum class ExitCode : int {
    ok = 0,            // success
    internal = 1,      // a bug in rabbit (please report it): an invariant broke or an unexpected exception escaped
    usage = 2,         // the command line is wrong
    bad_input = 3,     // a file is missing, truncated, corrupt or inconsistent
    unsupported = 4,   // a well-formed model rabbit does not run (architecture, dtype, feature)
    output = 5,        // cannot write (disk full, not enough free space, permissions, OUT not empty)
    resources = 6,     // a memory budget too small for the minimum the model needs
    network = 7,       // the hub cannot be reached, or refused the request (unknown repo, gated without a token)
    interrupted = 130, // SIGINT or SIGTERM; partial output was removed
};

class Error : public std::runtime_error {
public:
    Error(ExitCode code, const std::string& message) : std::runtime_error(message), code_(code) {}
    ExitCode code() const { return code_; }

private:
    ExitCode code_;
};

// Helpers that read as sentences at the call site:
//   throw bad_input(path, "header length " + ... + " runs past the end of the file");
Error bad_input(const std::string& file, const std::string& what);
Error unsupported(const std::string& file, const std::string& what);
Error output_error(const std::string& file, const std::string& what);
Error network_error(const std::string& what);

// Formats errno as "No space left on device (ENOSPC)".
std::string errno_text(int err);

// Invariant violated: a bug in rabbit, not the user's input.
[[noreturn]] void fail_internal(const char* expr, const char* file, int line, const std::string& msg);

} // namespace rabbit

#define RABBIT_CHECK(cond, msg)                                                  \
    do {                                                                         \
        if (!(cond)) ::rabbit::fail_internal(#cond, __FILE__, __LINE__, (msg)); \
    } while (0)
