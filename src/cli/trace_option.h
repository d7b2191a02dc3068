// SPDX-License-Identifier: Apache-2.0
// --trace FILE on the commands that run a model (run, bench): the timeline of common/trace.h.
#pragma once

#include <CLI/CLI.hpp>

#include <string>

namespace rabbit {

void add_trace_option(CLI::App* sub, std::string& path);
// Before the work: checks that the file can be written (a usage error at once, not after a
// long run) and starts recording. Nothing for an empty path.
void start_trace(const std::string& path);
// After the work and after the engines are gone (their last GPU spans land as they close):
// writes the file.
void finish_trace(const std::string& path);

} // namespace rabbit
