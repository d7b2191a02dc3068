// SPDX-License-Identifier: Apache-2.0
// rabbit-tokbench: how fast a model's tokenizer loads and encodes, on one core.
//   rabbit-tokbench -m DIR --text FILE [--rounds N]
// Load: the median of N full loads of the tokenizer. Encode: FILE line by line (as
// `rabbit tokenize` reads it), the median of N passes, in MB/s of input.
#include "common/error.h"
#include "common/file_io.h"
#include "common/timing.h"
#include "tokenizer/tokenizer.h"

#include <CLI/CLI.hpp>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <sstream>

using namespace rabbit;
using clock_type = std::chrono::steady_clock;

int main(int argc, char** argv) {
    CLI::App app{"rabbit-tokbench: tokenizer load time and encode throughput on one core"};
    std::string dir, text_path;
    int rounds = 5;
    app.add_option("-m,--model", dir, "Directory holding tokenizer.json or tokenizer.model")->required();
    app.add_option("--text", text_path, "Text to encode, line by line")->required();
    app.add_option("--rounds", rounds, "Repetitions; medians are reported")->check(CLI::Range(1, 100));
    CLI11_PARSE(app, argc, argv);
    try {
        std::vector<double> loads;
        std::unique_ptr<Tokenizer> tok;
        for (int r = 0; r < rounds; ++r) {
            const auto t0 = clock_type::now();
            tok = load_tokenizer(dir);
            loads.push_back(std::chrono::duration<double, std::milli>(clock_type::now() - t0).count());
        }
        const std::string text = read_text_file(text_path, 1ull << 32);
        std::vector<std::string> lines;
        std::istringstream in(text);
        for (std::string line; std::getline(in, line);) lines.push_back(line);
        std::vector<double> rates;
        size_t ids = 0;
        for (int r = 0; r < rounds; ++r) {
            ids = 0;
            const auto t0 = clock_type::now();
            for (const auto& line : lines) ids += tok->encode(line, false).size();
            const double s = std::chrono::duration<double>(clock_type::now() - t0).count();
            rates.push_back(double(text.size()) / s / 1e6);
        }
        std::printf("tokenizer  %s\n", tok->source().c_str());
        std::printf("load       %.1f ms (median of %d)\n", median(loads), rounds);
        std::printf("text       %s: %.2f MB, %zu lines, %zu tokens (%.2f bytes/token)\n", text_path.c_str(),
                    double(text.size()) / 1e6, lines.size(), ids, double(text.size()) / double(ids));
        std::printf("encode     %.2f MB/s (median of %d, one thread)\n", median(rates), rounds);
        return 0;
    } catch (const Error& e) {
        std::fprintf(stderr, "error: %s\n", e.what());
        return int(e.code());
    }
}
