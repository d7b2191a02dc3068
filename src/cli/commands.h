// SPDX-License-Identifier: Apache-2.0
// Each subcommand registers its options on the app and returns what runs it.
#pragma once

#include <CLI/CLI.hpp>

#include <functional>

namespace rabbit {

struct GlobalOptions {
    int verbose = 0; // -v: debug, -vv: trace
    bool quiet = false;
    bool yes = false; // --yes: download a model -m names that is not here without asking
};

struct Command {
    CLI::App* app;
    std::function<int()> run; // returns the exit code; throws rabbit::Error
};

Command add_split_command(CLI::App& app, const GlobalOptions& global);
Command add_inspect_command(CLI::App& app, const GlobalOptions& global);
Command add_tokenize_command(CLI::App& app, const GlobalOptions& global);
Command add_run_command(CLI::App& app, const GlobalOptions& global);
Command add_chat_command(CLI::App& app, const GlobalOptions& global);
Command add_bench_command(CLI::App& app, const GlobalOptions& global);
Command add_perplexity_command(CLI::App& app, const GlobalOptions& global);
Command add_pull_command(CLI::App& app, const GlobalOptions& global);

// CLI11 validator for sizes such as 4G, 512MiB.
CLI::Validator size_validator();

} // namespace rabbit
