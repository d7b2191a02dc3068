// SPDX-License-Identifier: Apache-2.0
// rabbit-qbench: how fast the CPU's quantized products run on a model's shapes, with random
// blocks (the speed does not depend on the values). One pass is every layer's four products
// (qkv, o, gate_up, down) for T tokens, then the output head for one token, as a prefill of T
// tokens (T > 1) or one decode step (T = 1) computes them; attention and the norms are left
// out, so the tokens/s it prints bound a whole model's from above.
//   rabbit-qbench --type q4_k [--down q6_k] [--head q6_k] [--tokens 1,128] [--threads 2] [shapes]
// Defaults are SmolLM2-135M's shapes. Reports the median of --rounds passes.
#include "backend/cpu/kernels.h"
#include "backend/cpu/qkernels.h"
#include "cli/option_checks.h"
#include "common/error.h"
#include "common/thread_pool.h"
#include "common/timing.h"

#include <CLI/CLI.hpp>
#include <spdlog/fmt/fmt.h>

#include <algorithm>
#include <cstring>
#include <random>
#include <time.h>

using namespace rabbit;

namespace {

struct Weight {
    std::vector<uint8_t> bytes;
    Matrix m;
};

// Random blocks whose f16 factors are small finite numbers (the first two bytes of every
// block, or the last two for the k-quants that keep d at the end: close enough for speed).
Weight random_weight(DType t, uint64_t rows, uint64_t cols, std::mt19937& rng) {
    Weight w;
    w.bytes.resize(size_t(dtype_row_bytes(t, cols) * rows));
    uint64_t state = rng() | 1; // xorshift: mt19937 per byte takes longer than the products
    for (auto& b : w.bytes) {
        state ^= state << 13, state ^= state >> 7, state ^= state << 17;
        b = uint8_t(state >> 24);
    }
    const size_t bb = dtype_block_bytes(t);
    const uint16_t h = f32_to_f16(0.01f);
    for (size_t o = 0; o < w.bytes.size(); o += bb) {
        std::memcpy(&w.bytes[o], &h, 2);
        std::memcpy(&w.bytes[o + bb - 2], &h, 2);
    }
    w.m = Matrix{w.bytes.data(), t, rows, cols};
    return w;
}

// The process's CPU time in ms: with --threads 1 the products' own time, whatever else
// the machine runs (wall time counts the time other processes hold the core).
double cpu_ms() {
    timespec ts{};
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return double(ts.tv_sec) * 1e3 + double(ts.tv_nsec) * 1e-6;
}

DType parse_type(const std::string& s) {
    const auto t = dtype_from_name(s);
    if (!t || !is_weight_dtype(*t)) throw bad_input("--type", "a weight type such as q4_k, q8_0, f32");
    return *t;
}

} // namespace

int main(int argc, char** argv) {
    CLI::App app{"rabbit-qbench: the CPU's quantized matrix products on a model's shapes"};
    std::string type_name = "q4_k", head_name, down_name, act = "f32";
    std::vector<size_t> token_counts = {1, 128};
    size_t threads = 2, layers = 30, hidden = 576, inter = 1536, qkv = 960, vocab = 49152;
    int rounds = 5;
    app.add_option("--type", type_name, "Weight type of the layers (default q4_k)");
    app.add_option("--head", head_name, "Weight type of the output head (default: --type)");
    app.add_option("--down", down_name, "Weight type of the down projections (default: --type)");
    app.add_option("--tokens", token_counts, "Tokens per pass, each measured (default 1,128)")->delimiter(',');
    app.add_option("--threads", threads, "Threads (default 2)");
    app.add_option("--act-quant", act, "Activations of the quantized products: f32 (exact) or q8 (default f32)")
        ->check(CLI::IsMember({"f32", "q8"}));
    app.add_option("--layers", layers, "Layers (default 30)");
    app.add_option("--hidden", hidden, "Hidden size (default 576)");
    app.add_option("--inter", inter, "Intermediate size (default 1536)");
    app.add_option("--qkv", qkv, "Rows of the qkv projection (default 960)");
    app.add_option("--vocab", vocab, "Rows of the output head (default 49152)");
    positive(app.add_option("--rounds", rounds, "Repetitions; the median is reported (default 5)"), 1000);
    try {
        app.parse(argc, argv);
    } catch (const CLI::Success& e) {
        return app.exit(e);
    } catch (const CLI::ParseError& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return int(ExitCode::usage);
    }
    try {
        const DType t = parse_type(type_name), head_t = head_name.empty() ? t : parse_type(head_name);
        const DType down_t = down_name.empty() ? t : parse_type(down_name);
        std::mt19937 rng(1);
        std::vector<Weight> ws;
        for (size_t l = 0; l < layers; ++l) {
            ws.push_back(random_weight(t, qkv, hidden, rng));
            ws.push_back(random_weight(t, hidden, hidden, rng));
            ws.push_back(random_weight(t, 2 * inter, hidden, rng));
            ws.push_back(random_weight(down_t, hidden, inter, rng));
        }
        const Weight head = random_weight(head_t, vocab, hidden, rng);
        ThreadPool pool(threads);
        const ActQuant aq = act == "q8" ? ActQuant::q8 : ActQuant::f32;
        fmt::print("{} layers {} (down {}, head {}), {} threads, path {}\n", layers, dtype_name(t), dtype_name(down_t),
                   dtype_name(head_t), pool.size(),
                   is_quant_dtype(t) && aq == ActQuant::q8 ? cpu::qpath_name(cpu::best_qpath()) : isa_name(cpu_isa()));
        for (size_t n : token_counts) {
            std::vector<float> x(n * std::max(inter, hidden)), y(n * std::max(2 * inter, vocab));
            std::uniform_real_distribution<float> u(-1.0f, 1.0f);
            for (auto& v : x) v = u(rng);
            std::vector<double> ms, cpu;
            for (int r = 0; r < rounds + 1; ++r) { // the first round warms the caches up
                const auto t0 = Clock::now();
                const double c0 = cpu_ms();
                for (const Weight& w : ws) matmul(pool, x.data(), n, w.m, nullptr, y.data(), 0, aq);
                matmul(pool, x.data(), 1, head.m, nullptr, y.data(), 0, aq);
                if (r > 0) ms.push_back(seconds_since(t0) * 1e3), cpu.push_back(cpu_ms() - c0);
            }
            std::sort(ms.begin(), ms.end());
            std::sort(cpu.begin(), cpu.end());
            const double med = ms[ms.size() / 2];
            fmt::print("  {:4} tokens: {:8.2f} ms per pass, {:8.1f} tokens/s ({:.2f} ms of CPU time)\n", n, med,
                       double(n) * 1e3 / med, cpu[cpu.size() / 2]);
        }
    } catch (const std::exception& e) {
        fmt::print(stderr, "error: {}\n", e.what());
        return 1;
    }
    return 0;
}
