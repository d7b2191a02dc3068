// SPDX-License-Identifier: Apache-2.0
// rabbit-tokbench: how fast a model's tokenizer loads and encodes, on one core.
//   rabbit-tokbench -m DIR --text FILE [--rounds N]
// Load: the median of N full loads of the tokenizer. Encode: FILE line by line (as
// `rabbit tokenize` reads it), the median of N passes, in MB/s of input.
#include "cli/option_checks.h"
#include "common/error.h"
#include "common/file_io.h"
#include "common/timing.h"
#include "tokenizer/tokenizer.h"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <sstream>

using namespace rabbit;

int main(int argc, char** argv) {
    CLI::App app{"rabbit-tokbench: tokenizer load time and encode throughput on one core"};
    std::string dir, text_path;
    int rounds = 5;
    app.add_option("-m,--model", dir, "Directory holding tokenizer.json or tokenizer.model")->required();
    app.add_option("--text", text_path, "Text to encode, line by line")->required();
    positive(app.add_option("--rounds", rounds, "Repetitions; medians are reported (default 5)"), 100);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) { // --help
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(ExitCode::usage);
    }
    try {
        std::vector<double> loads;
        std::unique_ptr<Tokenizer> tok;
        for (int r = 0; r < rounds; ++r) {
            const auto t0 = Clock::now();
            tok = load_tokenizer(dir);
            loads.push_back(seconds_since(t0) * 1e3);
        }
        const std::string text = read_text_file(text_path, 1ull << 32);
        std::vector<std::string> lines;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        std::vector<double> rates;
        size_t ids = 0;
        for (int r = 0; r < rounds; ++r) {
            ids = 0;
            const auto t0 = Clock::now();
            for (const auto& line : lines) ids += tok->encode(line, false).size();
            const double s = seconds_since(t0);
            rates.push_back(double(text.size()) / s / 1e6);
        }
        fmt::print("tokenizer  {}\n", tok->source());
        fmt::print("load       {:.1f} ms (median of {})\n", median(loads), rounds);
        fmt::print("text       {}: {:.2f} MB, {} lines, {} tokens ({:.2f} bytes/token)\n", text_path, double(text.size()) / 1e6,
                   lines.size(), ids, double(text.size()) / double(ids));
        fmt::print("encode     {:.2f} MB/s (median of {}, one thread)\n", median(rates), rounds);
        return 0;
    } catch (const Error& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(e.code());
    }
}
