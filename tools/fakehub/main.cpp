// SPDX-License-Identifier: Apache-2.0
// rabbit-fakehub: the tests' fake Hugging Face hub as a standalone server, so that a script can
// point huggingface_hub (HF_ENDPOINT) and rabbit at the same files (scripts/hub_cache_check.sh).
//   rabbit-fakehub --repo ORG/NAME=DIR [--repo ...] [--port N] [--token T]
// Prints "http://127.0.0.1:PORT" on stdout once listening; serves until SIGINT or SIGTERM.
#include "fake_hub.h"

#include "common/error.h"

#include <CLI/CLI.hpp>

#include <csignal>
#include <cstdio>
#include <thread>

namespace {
volatile std::sig_atomic_t g_stop = 0;
void on_signal(int) { g_stop = 1; }
} // namespace

int main(int argc, char** argv) {
    CLI::App app{"A fake Hugging Face hub on 127.0.0.1, serving directories as repos", "rabbit-fakehub"};
    std::vector<std::string> repos;
    uint16_t port = 0;
    std::string token;
    app.add_option("--repo", repos, "ORG/NAME=DIR: serve DIR's files as repo ORG/NAME")->required();
    app.add_option("--port", port, "Port (default: an ephemeral one)");
    app.add_option("--token", token, "Gate every repo behind this token (Authorization: Bearer TOKEN)");
    CLI11_PARSE(app, argc, argv);
    try {
        rabbit::fakehub::FakeHub hub(port);
        for (const std::string& r : repos) {
            const size_t eq = r.find('=');
            if (eq == std::string::npos) throw rabbit::Error(rabbit::ExitCode::usage, "--repo " + r + ": expected ORG/NAME=DIR");
            rabbit::fakehub::Repo repo = rabbit::fakehub::repo_from_directory(r.substr(0, eq), r.substr(eq + 1));
            repo.token = token;
            std::fprintf(stderr, "rabbit-fakehub: %s at commit %s, %zu files\n", repo.id.c_str(), repo.commit.c_str(), repo.files.size());
            hub.add_repo(std::move(repo));
        }
        std::signal(SIGINT, on_signal);
        std::signal(SIGTERM, on_signal);
        std::printf("%s\n", hub.url().c_str());
        std::fflush(stdout);
        while (!g_stop) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    } catch (const rabbit::Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return int(e.code());
    }
    return 0;
}
