// SPDX-License-Identifier: Apache-2.0
// rabbit: run large language models on GPUs far too small to hold them.
// Exit codes are listed in README.md and in common/error.h.
#include "cli/commands.h"
#include "common/error.h"
#include "common/interrupt.h"

#include <spdlog/fmt/fmt.h>
#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

#include <cstdio>
#include <new>
#include <string>

#ifndef RABBIT_GIT_REV
#define RABBIT_GIT_REV "unknown"
#endif

namespace {

std::string version_text() {
    std::string v = std::string("rabbit ") + RABBIT_VERSION + " (" + RABBIT_GIT_REV + ")\n";
#ifdef RABBIT_HAVE_CUDA
    v += std::string("backends: cpu, cuda (") + RABBIT_CUDA_ARCH_LIST + ")";
#else
    v += "backends: cpu (built without CUDA)";
#endif
    return v;
}

void setup_logging(const rabbit::GlobalOptions& g) {
    auto logger = spdlog::stderr_color_mt("rabbit");
    logger->set_pattern("%^%l%$: %v");
    spdlog::set_default_logger(logger);
    spdlog::level::level_enum level = spdlog::level::info;
    if (g.quiet) level = spdlog::level::warn;
    if (g.verbose == 1) level = spdlog::level::debug;
    if (g.verbose >= 2) level = spdlog::level::trace;
    spdlog::set_level(level);
}

// One line, always: errors are read in terminals and grepped in logs.
int report(rabbit::ExitCode code, std::string message) {
    for (char& c : message)
        if (c == '\n' || c == '\r') c = ' ';
    fmt::print(stderr, "error: {}\n", message);
    return int(code);
}

} // namespace

int main(int argc, char** argv) {
    rabbit::install_interrupt_handlers();
    CLI::App app{"rabbit: runs large language models on GPUs far too small to hold them, streaming one layer at a "
                 "time from per-layer shard files.",
                 "rabbit"};
    app.set_version_flag("--version", version_text());
    rabbit::GlobalOptions global;
    app.add_flag("-v,--verbose", global.verbose, "More detail on stderr (-vv: trace)");
    app.add_flag("-q,--quiet", global.quiet, "Only warnings and errors on stderr");
    app.add_flag("--yes", global.yes, "Download a hub model that -m ORG/NAME names and the cache lacks, without asking");
    app.require_subcommand(1);
    app.fallthrough(); // -v and -q also after the subcommand
    // The labels of README.md's table (tests/test_cli.cpp checks them).
    app.footer("Exit codes: 0 ok, 1 internal error, 2 usage, 3 bad input, 4 unsupported, 5 output, 6 resources, 7 network, "
               "130 interrupted.");

    std::vector<rabbit::Command> commands = {
        rabbit::add_split_command(app, global),
        rabbit::add_inspect_command(app, global),
        rabbit::add_run_command(app, global),
        rabbit::add_chat_command(app, global),
        rabbit::add_bench_command(app, global),
        rabbit::add_tokenize_command(app, global),
        rabbit::add_perplexity_command(app, global),
        rabbit::add_pull_command(app, global),
    };

    try {
        app.parse(argc, argv);
    } catch (const CLI::CallForHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForAllHelp& e) {
        return app.exit(e);
    } catch (const CLI::CallForVersion& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        report(rabbit::ExitCode::usage, e.what());
        fmt::print(stderr, "Run 'rabbit --help' or 'rabbit COMMAND --help' for usage.\n");
        return int(rabbit::ExitCode::usage);
    }
    setup_logging(global);

    try {
        for (auto& cmd : commands)
            if (cmd.app->parsed()) return cmd.run();
        return report(rabbit::ExitCode::usage, "no command given");
    } catch (const rabbit::Error& e) {
        return report(e.code(), e.what());
    } catch (const std::bad_alloc&) {
        return report(rabbit::ExitCode::resources, "out of memory");
    } catch (const std::exception& e) {
        return report(rabbit::ExitCode::internal, std::string("internal error: ") + e.what());
    }
}
