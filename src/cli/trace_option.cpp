// SPDX-License-Identifier: Apache-2.0
#include "cli/trace_option.h"

#include "common/file_io.h"
#include "common/trace.h"

#include <spdlog/spdlog.h>

namespace rabbit {

void add_trace_option(CLI::App* sub, std::string& path) {
    sub->add_option("--trace", path,
                    "Write a timeline of the run to FILE: Chrome trace-event JSON, with tracks for the loader, the host "
                    "copy, the copy engine, compute and tokens (open it in ui.perfetto.dev or chrome://tracing)");
}

void start_trace(const std::string& path) {
    if (path.empty()) return;
    check_writable_path(path);
    trace::start(path);
}

void finish_trace(const std::string& path) {
    if (path.empty()) return;
    trace::finish();
    spdlog::info("wrote the timeline to {} (open it in ui.perfetto.dev)", path);
}

} // namespace rabbit
